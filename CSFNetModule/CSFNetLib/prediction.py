"""`csfnet predict`: p_malignant for every nodule of a cohort, written to results.csv.

Cases stream through in batches (a cohort larger than memory is fine); a case that cannot be read
gets a row with its error instead of a probability, and the others carry on. Under torchrun the
patients are shared among the processes and their rows merged in the cohort's order.
"""

import hashlib
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Tuple, Union

import numpy as np
import SimpleITK as sitk
import torch

from .attention import DEFAULT_METHOD, color_table, heat_image, label_image
from .cohort_csv import read_cohort
from .dataset import RoiSet
from .distributed import SINGLE, Ranks, barrier, gather
from .inference import Predictor
from .nlst_cmst import iter_nlst_cmst
from .records import CaseProblem, Cohort, Sample
from .results_file import ResultsWriter, fingerprint
from .samples import iter_samples

COLOR_TABLE = "attention-labels.ctbl"


Row = Tuple[Tuple[int, int], str, str, str, Optional[float]]  # (order key), pid, nodule, error, p_malignant


def _batches(items: Iterable[Union[Sample, CaseProblem]], size: int) -> Iterator[List[Union[Sample, CaseProblem]]]:
    batch: List[Union[Sample, CaseProblem]] = []
    samples = 0
    for item in items:
        batch.append(item)
        samples += isinstance(item, Sample)
        if samples >= size:
            yield batch
            batch, samples = [], 0
    if batch:
        yield batch


def predict_cohort(
    cases_csv: Path,
    out: Path,
    clinical_csv: Optional[Path] = None,
    checkpoint: Optional[Path] = None,
    device: Union[str, torch.device] = "auto",
    batch_size: int = 16,
    nlst_cmst_rois: Optional[Path] = None,
    overwrite: bool = False,
    attention_dir: Optional[Path] = None,
    attention_method: str = DEFAULT_METHOD,
    ranks: Ranks = SINGLE,
    resume: bool = False,
    precision: str = "fp32",
) -> Tuple[int, int]:
    """Write results.csv; returns (cases predicted, cases failed). Never overwrites unless asked.

    Rows come in the cohort's order: problems found in the CSV first, then patient by patient. They
    are written as they come (see `ResultsWriter`); `resume` continues an interrupted run without
    redoing or repeating a case. With `attention_dir`, each nodule's attention at T0 and T1 is
    written there as a heat image and a label map (NRRD, on the ROI's grid where it lies in the
    scan) plus the labels' colour table. Under torchrun (`ranks`), each process predicts every
    `world`-th patient and rank 0 merges the rows into the same file, in the same order, as one
    process would write. `precision` fp16 autocasts the network on a CUDA GPU (see PRECISIONS).
    """
    ResultsWriter.check_target(Path(out), overwrite, resume)  # by every process, before any work
    if resume and ranks.several:
        raise ValueError("--resume continues a run of one process; rerun the distributed prediction whole")
    if attention_dir is not None and precision != "fp32":
        raise ValueError("--attention-dir runs the network in fp32 (Grad-CAM needs its gradients); "
                         f"drop --precision {precision} or the attention maps")
    predictor = Predictor(checkpoint, device, batch_size, precision)
    if attention_dir is not None:
        earlier = sorted(Path(attention_dir).glob("*-heat.nrrd")) if Path(attention_dir).is_dir() else []
        if earlier and not (overwrite or resume):
            raise FileExistsError(f"{attention_dir} already holds attention maps (e.g. {earlier[0].name}); pass "
                                  "--overwrite to replace them or choose another folder")
        barrier(ranks)  # every process has looked before any writes
        Path(attention_dir).mkdir(parents=True, exist_ok=True)
        if ranks.main:
            (Path(attention_dir) / COLOR_TABLE).write_text(color_table(), encoding="utf-8")
    attention = (Path(attention_dir), attention_method) if attention_dir is not None else None
    if ranks.several:
        if nlst_cmst_rois is not None:
            raise ValueError("--distributed prediction reads cases.csv cohorts; run NLST-cmst ROIs in one process")
        cohort = read_cohort(cases_csv, clinical_csv)
        patients = _patient_order(cohort)
        mine = replace(cohort, cases=[c for c in cohort.cases if ranks.mine(patients[c.pid])],
                       problems=cohort.problems if ranks.main else [])
        rows = _rows(iter_samples(mine, predictor.preprocessing, predictor.vocabulary), patients,
                     len(mine.problems), predictor, batch_size, attention)
        everyone = gather(list(rows), ranks)
        merged = sorted((row for part in everyone for row in part), key=lambda row: row[0])
        done = failed = 0
        if ranks.main:
            with ResultsWriter(out, predictor, overwrite) as results:
                _write(merged, results)
            done, failed = results.predicted, results.failed
        return tuple(gather((done, failed), ranks)[0])  # also waits for rank 0's file
    run = {"cases": fingerprint(cases_csv), "clinical": fingerprint(clinical_csv),
           "nlst_cmst_rois": str(Path(nlst_cmst_rois).resolve()) if nlst_cmst_rois else ""}
    with ResultsWriter(out, predictor, overwrite, resume, run) as results:
        if nlst_cmst_rois is not None:
            items = (item for item in iter_nlst_cmst(cases_csv, nlst_cmst_rois, clinical_csv, predictor.vocabulary)
                     if (item.pid, item.nodule) not in results.done)
            rows = _rows(items, {}, 0, predictor, batch_size, attention)
        else:
            cohort = read_cohort(cases_csv, clinical_csv)
            todo = replace(cohort, cases=[c for c in cohort.cases if (c.pid, c.nodule) not in results.done],
                           problems=[p for p in cohort.problems if str(p) not in results.errors])
            rows = _rows(iter_samples(todo, predictor.preprocessing, predictor.vocabulary), _patient_order(cohort),
                         len(todo.problems), predictor, batch_size, attention)
        _write(rows, results)
    return results.predicted, results.failed


def _patient_order(cohort: Cohort) -> Dict[str, int]:
    return {pid: i for i, pid in enumerate(dict.fromkeys(case.pid for case in cohort.cases))}


def _write(rows: Iterable[Row], results: ResultsWriter) -> None:
    for _, pid, nodule, error, p in rows:
        if error:
            results.problem(pid, nodule, error)
        else:
            results.prediction(pid, nodule, p)


def _rows(items, patients: Dict[str, int], leading: int, predictor: Predictor, batch_size: int,
          attention) -> Iterator[Row]:
    """One row per item, in the items' order, keyed so that shares of a cohort merge back into that order.

    A key is (the patient's index in the cohort, the item's position in this stream): a patient's
    items all come from one stream, in order. The first `leading` items (problems found in the CSV)
    and items of no known patient come first, by position.
    """
    for position, (item, p) in enumerate(_predicted(items, predictor, batch_size, attention)):
        group = -1 if position < leading else patients.get(item.pid, -1)
        if isinstance(item, CaseProblem):
            print(f"csfnet predict: skipped {item}", file=sys.stderr)
            yield (group, position), item.pid, item.nodule, str(item), None
        else:
            yield (group, position), item.pid, item.nodule, "", p


def _predicted(items, predictor: Predictor, batch_size: int, attention) -> Iterator[Tuple[object, Optional[float]]]:
    """(item, p_malignant or None for a problem), in the items' order, predicted batch by batch."""
    for batch in _batches(items, batch_size):
        rois, _ = RoiSet.collect(batch)
        if attention is not None and len(rois):
            probabilities, maps = predictor.predict_with_attention(rois, attention[1])
            _write_attention(attention[0], rois, maps, predictor.preprocessing, attention[1])
        else:
            probabilities = predictor.predict(rois) if len(rois) else []
        predicted = iter(probabilities)
        for item in batch:
            yield item, None if isinstance(item, CaseProblem) else float(next(predicted))


def file_safe(text: str) -> str:
    """`text` as part of a file name on any system: kept when it is letters, digits, '.', '-' and '_',
    else those characters with the rest as '_' and a short hash of the original, so ids stay apart."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", text)
    return safe if safe == text else f"{safe}-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:8]}"


def _write_attention(folder: Path, rois: RoiSet, maps, preprocessing, method: str) -> None:
    """{pid}_nodule{n}_{T0|T1}_{method}-heat.nrrd and ..._{method}-labels.nrrd for every case with a scan."""
    for i, (pid, nodule) in enumerate(zip(rois.pids, rois.nodules)):
        for t, timepoint in enumerate(("T0", "T1")):
            center = rois.centers[i, t]
            if not np.all(np.isfinite(center)):  # pre-cut ROIs: no scan to place them in
                continue
            stem = folder / f"{file_safe(pid)}_nodule{file_safe(nodule)}_{timepoint}_{method}"
            sitk.WriteImage(heat_image(maps[i, t], center, preprocessing), f"{stem}-heat.nrrd", useCompression=True)
            sitk.WriteImage(label_image(maps[i, t], center, preprocessing), f"{stem}-labels.nrrd",
                            useCompression=True)
