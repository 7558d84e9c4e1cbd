"""results.csv: one row per nodule, written as the run goes and put in place only when it completes.

Rows go to a hidden `.<name>.partial` beside the target (flushed row by row, synced to disk every
SYNC_EVERY rows), which is renamed onto the target when the run completes. An interrupted run leaves the
partial file and a `.json` describing the run; `resume=True` continues it, skipping every case it
already holds. An existing results file is never replaced unless the caller asks.
"""

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Mapping, Optional, Set, Tuple, Union

from .checkpoint import runtime_versions
from .errors import InterruptedRun, OtherRun
from .output_paths import check_output_file
from .shipped_weights import sha256_of

if TYPE_CHECKING:
    from .inference import Predictor

SYNC_EVERY = 16  # rows between fsyncs: a machine crash loses at most these, and few fsyncs cost little

#: The follow-up scan's measurements (measurements.csv's columns of the same names) beside each prediction.
MEASURED_COLUMNS = ("diameter_mm", "type", "vdt_days", "growth_class", "lung_rads")
COLUMNS = ("pid", "nodule", "p_malignant", "prediction", "threshold", "model", "model_version", "device",
           "csfnet_version", *MEASURED_COLUMNS, "error")
#: With nodules seen in more than two scans, a row per follow-up: `scans` after `nodule` names the pair.
SCANS_COLUMNS = COLUMNS[:2] + ("scans",) + COLUMNS[2:]
TWO_SCANS = "T0-T1"


class ResultsWriter:
    """Context manager writing results.csv for one model (`predictor`: name, version, device, threshold).

    `run` describes what is being predicted (e.g. the cohort's files); a resumed run must match it.
    After entering, `done` holds the (pid, nodule) of every row already written and `errors` the
    error texts, so the caller can skip them.
    """

    def __init__(self, out: Union[str, Path], predictor: "Predictor", *, overwrite: bool = False,
                 resume: bool = False, run: Optional[Dict[str, str]] = None, scans_column: bool = False):
        self.out = Path(out)
        self.columns = SCANS_COLUMNS if scans_column else COLUMNS
        self.check_target(self.out, overwrite=overwrite, resume=resume)
        self.partial, self.about = _partial_files(self.out)
        self.threshold = predictor.threshold
        self.common: Dict[str, object] = {"model": predictor.name, "model_version": predictor.version,
                                          "device": predictor.device_text,
                                          "csfnet_version": runtime_versions()["csfnet"]}
        reduced = {"precision": predictor.precision} if predictor.precision != "fp32" else {}  # as older runs
        self.run = {"model": predictor.name, "model_version": predictor.version, **reduced, **(run or {})}
        self.resume = resume and self.partial.exists()
        self.done: Set[Tuple[str, str, str]] = set()  # (pid, nodule, scans)
        self.errors: Set[str] = set()
        self.predicted = self.failed = self._unsynced = 0

    @staticmethod
    def check_target(out: Path, *, overwrite: bool = False, resume: bool = False) -> None:
        """Refuse, before any work, a run that would replace a results file or an interrupted run's rows, or
        whose results could not be written (`check_output_file`)."""
        out = Path(out)
        check_output_file(out, "the results", overwrite=overwrite)
        partial = _partial_files(out)[0]
        if partial.exists() and not resume and not overwrite:
            raise InterruptedRun("{partial} holds an interrupted run; pass {resume} to continue it or {overwrite} "
                                 "to start again", partial=partial)

    def __enter__(self) -> "ResultsWriter":
        self.out.parent.mkdir(parents=True, exist_ok=True)
        if self.resume:
            self._read_partial()
        else:
            self.about.write_text(json.dumps(self.run, indent=1), encoding="utf-8")  # first: says whose rows
        self._handle = open(self.partial, "a" if self.resume else "w", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._handle, fieldnames=self.columns)
        if not self.resume:
            self._writer.writeheader()
            self._handle.flush()
            self.sync()
        return self

    def _read_partial(self) -> None:
        """Keep the complete rows of the interrupted run (a torn last line is dropped) and note them."""
        about = json.loads(self.about.read_text(encoding="utf-8")) if self.about.exists() else {}
        if about != self.run:
            raise OtherRun("{partial} was written by another run ({about}); this run is {run}. Pass {overwrite} to "
                           "start again", partial=self.partial, about=about, run=self.run)
        with open(self.partial, newline="", encoding="utf-8") as handle:  # line endings as written
            text = handle.read()
        complete = text[: text.rfind("\n") + 1]
        rows = list(csv.DictReader(io.StringIO(complete, newline="")))
        with open(self.partial, "w", newline="", encoding="utf-8") as handle:
            if not complete:  # killed before its header reached the disk
                csv.DictWriter(handle, fieldnames=self.columns).writeheader()
            handle.write(complete)
        for row in rows:
            self.done.add((row["pid"], row["nodule"], row.get("scans") or TWO_SCANS))
            if row["error"]:
                self.errors.add(row["error"])
                self.failed += 1
            else:
                self.predicted += 1

    def prediction(self, pid: str, nodule: str, p_malignant: float,
                   measured: Optional[Mapping[str, object]] = None, scans: str = TWO_SCANS) -> None:
        """A predicted nodule's row for the pair of `scans`; `measured`: its follow-up scan's measurements.csv
        row, when measured."""
        written = f"{p_malignant:.6f}"  # the prediction follows the number the reader sees
        sizes = {column: _cell(measured.get(column, "")) for column in MEASURED_COLUMNS} if measured else {}
        pair = {"scans": scans} if "scans" in self.columns else {}
        self._write({"pid": pid, "nodule": nodule, **pair, "p_malignant": written,
                     "prediction": int(float(written) >= self.threshold), "threshold": self.threshold,
                     **self.common, **sizes, "error": ""})
        self.predicted += 1

    def problem(self, pid: str, nodule: Optional[str], reason: str, scans: str = TWO_SCANS) -> None:
        pair = {"scans": scans} if "scans" in self.columns and nodule else {}
        self._write({"pid": pid, "nodule": nodule or "", **pair, **self.common, "error": reason})
        self.failed += 1

    def _write(self, row: Dict[str, object]) -> None:
        self._writer.writerow(row)
        self._handle.flush()
        self._unsynced += 1
        if self._unsynced == SYNC_EVERY:
            self.sync()

    def sync(self) -> None:
        """Make the rows written so far survive a crash of the machine, not only of the process."""
        os.fsync(self._handle.fileno())
        self._unsynced = 0

    def __exit__(self, kind, value, traceback) -> None:
        self._handle.flush()
        self.sync()
        self._handle.close()
        if kind is None:
            os.replace(self.partial, self.out)
            self.about.unlink(missing_ok=True)
        elif not self.resume and self.predicted + self.failed == 0:  # failed before its first row: nothing to resume
            self.partial.unlink(missing_ok=True)
            self.about.unlink(missing_ok=True)
        # otherwise the partial file stays, for --resume


def _cell(value: object) -> object:
    """A measurement as results.csv writes it: a missing number (nan) is an empty cell."""
    return "" if isinstance(value, float) and math.isnan(value) else value


def fingerprint(path: Optional[Path]) -> str:
    """What a resumed run must find again of an input file: its name and content."""
    return f"{Path(path).resolve()} sha256:{sha256_of(Path(path))}" if path else ""


def _partial_files(out: Path) -> Tuple[Path, Path]:
    """Where an unfinished run's rows and its description live, beside the results file."""
    return out.with_name(f".{out.name}.partial"), out.with_name(f".{out.name}.partial.json")


def read_probabilities(results_csv: Union[str, Path]) -> Dict[Tuple[str, str, str], float]:
    """CSF-net's probability of every predicted row of a results.csv, by (pid, nodule, pair of scans)."""
    with open(results_csv, newline="", encoding="utf-8") as handle:
        return {(row["pid"], row["nodule"], row.get("scans") or TWO_SCANS): float(row["p_malignant"])
                for row in csv.DictReader(handle) if not row.get("error") and row.get("p_malignant")}
