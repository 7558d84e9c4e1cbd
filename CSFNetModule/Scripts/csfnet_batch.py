"""CSF-net batch prediction over scene files or a cases.csv cohort; `--help` lists the options.

  Slicer --no-splash --no-main-window --python-script csfnet_batch.py -- --cases cases.csv --out results.csv
  python csfnet_batch.py --cases cases.csv --out results.csv        (plain Python with slicer-core)
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # CSFNetModule/, which holds CSFNetLib

from CSFNetLib.scene.batch import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
