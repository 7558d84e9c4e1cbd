"""`csfnet predict`: p_malignant for every nodule of a cohort, written to results.csv.

Cases stream through in batches (a cohort larger than memory is fine); a case that cannot be read
gets a row with its error instead of a probability, and the others carry on.
"""

import csv
import os
import sys
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Tuple, Union

from .checkpoint import runtime_versions
from .clinical import ClinicalVocabulary
from .cohort import CaseProblem, Cohort, Sample, iter_nlst_cmst, iter_samples
from .dataset import RoiSet
from .inference import Predictor

COLUMNS = ("pid", "nodule", "p_malignant", "prediction", "threshold", "model", "model_version", "device",
           "csfnet_version", "error")


def _batches(items: Iterable[Union[Sample, CaseProblem]], size: int) -> Iterator[List[Union[Sample, CaseProblem]]]:
    batch: List[Union[Sample, CaseProblem]] = []
    for item in items:
        batch.append(item)
        if sum(isinstance(i, Sample) for i in batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def predict_cohort(
    cases_csv: Path,
    out: Path,
    clinical_csv: Optional[Path] = None,
    checkpoint: Optional[Path] = None,
    device: str = "auto",
    batch_size: int = 16,
    nlst_cmst_rois: Optional[Path] = None,
    overwrite: bool = False,
) -> Tuple[int, int]:
    """Write results.csv; returns (cases predicted, cases failed). Never overwrites unless asked."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    predictor = Predictor(checkpoint, device, batch_size)
    vocabulary: ClinicalVocabulary = predictor.vocabulary
    if nlst_cmst_rois is not None:
        items = iter_nlst_cmst(cases_csv, nlst_cmst_rois, clinical_csv, vocabulary)
    else:
        items = iter_samples(Cohort.from_csv(cases_csv, clinical_csv), predictor.preprocessing, vocabulary)
    common = {"threshold": predictor.threshold, "model": predictor.name, "model_version": predictor.version,
              "device": str(predictor.device), "csfnet_version": runtime_versions()["csfnet"]}
    done = failed = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    with open(partial, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for batch in _batches(items, batch_size):
            rois, problems = RoiSet.collect(batch)
            for problem in problems:
                print(f"csfnet predict: skipped {problem}", file=sys.stderr)
                writer.writerow({"pid": problem.pid, "nodule": problem.nodule, **common, "threshold": "",
                                 "error": str(problem)})
            failed += len(problems)
            for pid, nodule, p in zip(rois.pids, rois.nodules, predictor.predict(rois) if len(rois) else []):
                writer.writerow({"pid": pid, "nodule": nodule, "p_malignant": f"{p:.6f}",
                                 "prediction": int(p >= predictor.threshold), **common, "error": ""})
            done += len(rois)
    os.replace(partial, out)
    return done, failed
