"""`csfnet predict`: p_malignant for every nodule of a cohort, written to results.csv.

Cases stream through in batches (a cohort larger than memory is fine); a case that cannot be read
gets a row with its error instead of a probability, and the others carry on.
"""

import sys
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Tuple, Union

import numpy as np
import SimpleITK as sitk

from .attention import DEFAULT_METHOD, color_table, heat_image, label_image
from .clinical import ClinicalVocabulary
from .cohort import CaseProblem, Cohort, Sample, iter_nlst_cmst, iter_samples
from .dataset import RoiSet
from .inference import Predictor
from .results_file import ResultsWriter

COLOR_TABLE = "attention-labels.ctbl"


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
    attention_dir: Optional[Path] = None,
    attention_method: str = DEFAULT_METHOD,
) -> Tuple[int, int]:
    """Write results.csv; returns (cases predicted, cases failed). Never overwrites unless asked.

    With `attention_dir`, each nodule's attention at T0 and T1 is written there as a heat image and
    a label map (NRRD, on the ROI's grid where it lies in the scan) plus the labels' colour table.
    """
    predictor = Predictor(checkpoint, device, batch_size)
    vocabulary: ClinicalVocabulary = predictor.vocabulary
    if nlst_cmst_rois is not None:
        items = iter_nlst_cmst(cases_csv, nlst_cmst_rois, clinical_csv, vocabulary)
    else:
        items = iter_samples(Cohort.from_csv(cases_csv, clinical_csv), predictor.preprocessing, vocabulary)
    with ResultsWriter(out, predictor, overwrite) as results:
        if attention_dir is not None:
            Path(attention_dir).mkdir(parents=True, exist_ok=True)
            (Path(attention_dir) / COLOR_TABLE).write_text(color_table(), encoding="utf-8")
        for batch in _batches(items, batch_size):
            rois, problems = RoiSet.collect(batch)
            for problem in problems:
                print(f"csfnet predict: skipped {problem}", file=sys.stderr)
                results.problem(problem.pid, problem.nodule, str(problem))
            if attention_dir is not None and len(rois):
                probabilities, maps = predictor.predict_with_attention(rois, attention_method)
                _write_attention(Path(attention_dir), rois, maps, predictor.preprocessing, attention_method)
            else:
                probabilities = predictor.predict(rois) if len(rois) else []
            for pid, nodule, p in zip(rois.pids, rois.nodules, probabilities):
                results.prediction(pid, nodule, float(p))
    return results.predicted, results.failed


def _write_attention(folder: Path, rois: RoiSet, maps, preprocessing, method: str) -> None:
    """{pid}_nodule{n}_{T0|T1}_{method}-heat.nrrd and ..._{method}-labels.nrrd for every case with a scan."""
    for i, (pid, nodule) in enumerate(zip(rois.pids, rois.nodules)):
        for t, timepoint in enumerate(("T0", "T1")):
            center = rois.centers[i, t]
            if not np.all(np.isfinite(center)):  # pre-cut ROIs: no scan to place them in
                continue
            stem = folder / f"{pid}_nodule{nodule}_{timepoint}_{method}"
            sitk.WriteImage(heat_image(maps[i, t], center, preprocessing), f"{stem}-heat.nrrd", useCompression=True)
            sitk.WriteImage(label_image(maps[i, t], center, preprocessing), f"{stem}-labels.nrrd",
                            useCompression=True)
