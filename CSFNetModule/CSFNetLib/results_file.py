"""results.csv: one row per nodule, written whole or not at all (see docs/data-formats in shared docs).

Rows go to a hidden file beside the target, which is renamed onto it only when the run completes;
an existing results file is never replaced unless the caller asks.
"""

import csv
import os
from pathlib import Path
from typing import Dict, Optional, Union

from .checkpoint import runtime_versions

COLUMNS = ("pid", "nodule", "p_malignant", "prediction", "threshold", "model", "model_version", "device",
           "csfnet_version", "error")


class ResultsWriter:
    """Context manager writing results.csv for one model (`predictor`: name, version, device, threshold)."""

    def __init__(self, out: Union[str, Path], predictor, overwrite: bool = False):
        self.out = Path(out)
        if self.out.exists() and not overwrite:
            raise FileExistsError(f"{self.out} exists; pass --overwrite to replace it")
        self.partial = self.out.with_name(f".{self.out.name}.partial")
        self.threshold = predictor.threshold
        self.common: Dict[str, object] = {"model": predictor.name, "model_version": predictor.version,
                                          "device": str(predictor.device),
                                          "csfnet_version": runtime_versions()["csfnet"]}
        self.predicted = self.failed = 0

    def __enter__(self) -> "ResultsWriter":
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.partial, "w", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._handle, fieldnames=COLUMNS)
        self._writer.writeheader()
        return self

    def prediction(self, pid: str, nodule: str, p_malignant: float) -> None:
        self._writer.writerow({"pid": pid, "nodule": nodule, "p_malignant": f"{p_malignant:.6f}",
                               "prediction": int(p_malignant >= self.threshold), "threshold": self.threshold,
                               **self.common, "error": ""})
        self.predicted += 1

    def problem(self, pid: str, nodule: Optional[str], reason: str) -> None:
        self._writer.writerow({"pid": pid, "nodule": nodule or "", **self.common, "error": reason})
        self.failed += 1

    def __exit__(self, kind, value, traceback) -> None:
        self._handle.close()
        if kind is None:
            os.replace(self.partial, self.out)
        else:
            self.partial.unlink(missing_ok=True)
