"""CSF-net batch prediction over scene files or a cases.csv cohort; `--help` lists the options.

  Slicer --no-splash --no-main-window --python-script csfnet_batch.py -- --cases cases.csv --out results.csv
  python csfnet_batch.py --cases cases.csv --out results.csv        (plain Python with slicer-core)

Every ending is a `sys.exit(status)`: a headless Slicer exits only on SystemExit, so anything else
(a library that fails to import, an unexpected error) would leave it running for ever.
"""

import sys
import traceback
from pathlib import Path

CRASHED = 4  # an unexpected error; the batch's own statuses are 0-3 (CSFNetLib/scene/batch.py)


def exit_status(argv) -> int:
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # CSFNetModule/, which holds CSFNetLib
        from CSFNetLib.scene.batch import main

        return main(argv)
    except SystemExit as exc:  # argparse: --help (0) or a bad argument (2)
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    except BaseException:  # noqa: BLE001 - reported, then the status says it
        traceback.print_exc()
        print(f"csfnet_batch: stopped by an unexpected error (exit status {CRASHED})", file=sys.stderr)
        return CRASHED


sys.exit(exit_status(sys.argv[1:]))
