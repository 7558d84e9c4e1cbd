"""Run the module's in-Slicer test (CSFNetTest) and exit with its result: 0 passed, 1 failed.

  Slicer --no-splash --python-script csfnet_selftest.py

Slicer exits only on SystemExit, so a failing test must not leave it open: every ending is `sys.exit`.
"""

import sys
import traceback

status = 1
try:
    import slicer

    slicer.selfTests["CSFNet"]()
    status = 0
except BaseException:  # noqa: BLE001 - reported, then the status says it
    traceback.print_exc()
finally:
    sys.exit(status)
