"""`csfnet predict`: p_malignant for every nodule of a cohort, written to results.csv.

Cases stream through in batches (a cohort larger than memory is fine); a case that cannot be read
gets a row with its error instead of a probability, and the others carry on. Under torchrun the
patients are shared among the processes and their rows merged in the cohort's order.
"""

import hashlib
import logging
import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, NamedTuple, Optional, Tuple, Union

import numpy as np
import SimpleITK as sitk
import torch

from .attention import color_table, heat_image, label_image
from .cohort_csv import read_cohort
from .dataset import RoiSet
from .distributed import SINGLE, Ranks, barrier, gather
from .errors import ResultsExist, UnusableOptions
from .inference import Predictor, threads_beside_readers
from .measure.cohort import write_measurements
from .nlst_cmst import iter_nlst_cmst
from .options import DEFAULT_ATTENTION_METHOD, AttentionMethod, Precision
from .output_paths import check_output_file, check_output_folder
from .preprocessing import Preprocessing
from .records import CaseProblem, Cohort, Sample
from .results_file import TWO_SCANS, ResultsWriter, fingerprint
from .samples import iter_samples

log = logging.getLogger(__name__)

COLOR_TABLE = "attention-labels.ctbl"

Item = Union[Sample, CaseProblem]


@dataclass(frozen=True)
class _Job:
    """What every batch of a run needs: the loaded model, how many nodules go through it at once,
    where attention maps go (None: no maps), whether nodules are measured and where the full table goes,
    how many processes read scans."""

    predictor: Predictor
    batch_size: int
    attention: Optional["AttentionOutput"]
    measure: bool = False
    measurements: Optional[Path] = None
    readers: int = 1


@dataclass(frozen=True)
class AttentionOutput:
    """Where each nodule's T0 and T1 attention maps are written, and how they are made."""

    folder: Path
    method: AttentionMethod = DEFAULT_ATTENTION_METHOD


class Counts(NamedTuple):
    """How a prediction run ended: nodules predicted, and nodules that got an error row."""

    predicted: int
    failed: int


class Row(NamedTuple):
    """One line of results.csv before it is written; `order` merges shares of a cohort back into its order."""

    order: Tuple[int, int]
    pid: str
    nodule: str
    error: str
    p_malignant: Optional[float]
    measurements: Optional[List[Dict[str, object]]] = None  # the nodule's measurements.csv rows, every scan
    scans: str = ""  # the pair of scans assessed (e.g. T1-T2); empty for a problem


def predict_cohort(
    cases_csv: Path,
    out: Path,
    *,
    clinical_csv: Optional[Path] = None,
    checkpoint: Optional[Path] = None,
    device: Union[str, torch.device] = "auto",
    batch_size: int = 16,
    precision: Precision = "fp32",
    nlst_cmst_rois: Optional[Path] = None,
    attention: Optional[AttentionOutput] = None,
    measure: bool = True,
    measurements: Optional[Path] = None,
    overwrite: bool = False,
    resume: bool = False,
    readers: int = 1,
    ranks: Ranks = SINGLE,
) -> Counts:
    """Write results.csv; never overwrites unless asked.

    Rows come in the cohort's order: problems found in the CSV first, then patient by patient. They
    are written as they come (see `ResultsWriter`); `resume` continues an interrupted run without
    redoing or repeating a case. With `attention`, each nodule's attention at T0 and T1 is written
    to its folder as a heat image and a label map (NRRD, on the ROI's grid where it lies in the
    scan) plus the labels' colour table. Under torchrun (`ranks`), each process predicts every
    `world`-th patient and rank 0 merges the rows into the same file, in the same order, as one
    process would write. `precision` fp16 autocasts the network on a CUDA GPU. With `measure`, each
    nodule is also measured in both scans (`CSFNetLib.measure`): results.csv gets the follow-up's
    diameter, type, VDT, growth class and Lung-RADS category, and `measurements` the full table.
    With `readers` > 1, that many processes read the next patients' scans while the network runs.
    """
    out = Path(out)
    ResultsWriter.check_target(out, overwrite=overwrite, resume=resume)  # by every process, before any work
    _check_options(precision=precision, attention=attention, resume=resume, nlst_cmst_rois=nlst_cmst_rois,
                   ranks=ranks, measure=measure, measurements=measurements, overwrite=overwrite)
    if attention is not None:
        _prepare_attention_folder(attention.folder, replace_maps=overwrite or resume, ranks=ranks)
    predictor = Predictor(checkpoint, device=device, batch_size=batch_size, precision=precision)
    if clinical_csv is None and predictor.model.config.uses_clinical and ranks.main:
        warnings.warn("no clinical data given: every patient's clinical values count as missing (pass "
                      "the clinical file, or a model without the clinical branch)", stacklevel=2)
    job = _Job(predictor, batch_size, attention, measure and nlst_cmst_rois is None, measurements, readers)
    with threads_beside_readers(readers):
        if ranks.several:
            return _predict_shared(read_cohort(cases_csv, clinical_csv), out, job, overwrite=overwrite, ranks=ranks)
        return _predict_here(cases_csv, clinical_csv, nlst_cmst_rois, out, job, overwrite=overwrite, resume=resume)


def _predict_here(cases_csv: Path, clinical_csv: Optional[Path], nlst_cmst_rois: Optional[Path], out: Path,
                  job: _Job, *, overwrite: bool, resume: bool) -> Counts:
    """predict_cohort in this one process."""
    predictor = job.predictor
    run = {"cases": fingerprint(cases_csv), "clinical": fingerprint(clinical_csv),
           "nlst_cmst_rois": str(Path(nlst_cmst_rois).resolve()) if nlst_cmst_rois else ""}
    cohort = read_cohort(cases_csv, clinical_csv) if nlst_cmst_rois is None else None  # refused before any file
    with ResultsWriter(out, predictor, overwrite=overwrite, resume=resume, run=run,
                       scans_column=cohort is not None and _more_than_two_scans(cohort)) as results:
        if cohort is not None:
            todo = replace(cohort, cases=[c for c in cohort.cases if (c.pid, c.nodule, c.scans) not in results.done],
                           problems=[p for p in cohort.problems if str(p) not in results.errors])
            samples = iter_samples(todo, predictor.preprocessing, predictor.vocabulary, measure=job.measure,
                                   readers=job.readers)
            rows = _rows(samples, _patient_order(cohort), len(todo.problems), job)
        else:
            assert nlst_cmst_rois is not None  # the cohort is read from cases.csv otherwise
            items = (item for item in iter_nlst_cmst(cases_csv, nlst_cmst_rois, clinical_csv, predictor.vocabulary)
                     if (item.pid, item.nodule, getattr(item, "scans", TWO_SCANS)) not in results.done)
            rows = _rows(items, {}, 0, job)
        _write(rows, results, job.measurements)
    return Counts(results.predicted, results.failed)


def _check_options(*, precision: str, attention: Optional[AttentionOutput], resume: bool,
                   nlst_cmst_rois: Optional[Path], ranks: Ranks, measure: bool, measurements: Optional[Path],
                   overwrite: bool) -> None:
    """Refuse, before any work, options that cannot go together (and a measurements file already there)."""
    if measurements is not None:
        if not measure:
            raise UnusableOptions("{measurements} asks for the nodules' measurements, but measuring is switched off")
        if nlst_cmst_rois is not None:
            raise UnusableOptions("{measurements} needs scans to measure; pre-cut {nlst_cmst} ROIs have none")
        if resume:
            raise UnusableOptions("{measurements} is written by a whole run: rerun with {overwrite} instead of "
                                  "{resume}")
        check_output_file(measurements, "measurements", overwrite=overwrite)
    if resume and ranks.several:
        raise UnusableOptions("{resume} continues a run of one process; rerun the {distributed} prediction whole")
    if ranks.several and nlst_cmst_rois is not None:
        raise UnusableOptions("{distributed} prediction reads cases.csv cohorts; run pre-cut ({nlst_cmst}) ROIs in "
                              "one process")
    if attention is not None and precision != "fp32":
        raise UnusableOptions("{attention_dir} runs the network in fp32 (the maps need its gradients); drop "
                              "{precision} {value} or the attention maps", value=precision)


def _prepare_attention_folder(folder: Path, *, replace_maps: bool, ranks: Ranks) -> None:
    """The attention folder, refused when it holds maps already (unless they are to be replaced)."""
    folder = Path(folder)
    check_output_folder(folder, "attention maps")
    earlier = sorted(folder.glob("*-heat.nrrd")) if folder.is_dir() else []
    if earlier and not replace_maps:
        raise ResultsExist("{folder} already holds attention maps (e.g. {example}); pass {overwrite} to replace "
                           "them or choose another folder", folder=folder, example=earlier[0].name)
    barrier(ranks)  # every process has looked before any writes
    folder.mkdir(parents=True, exist_ok=True)
    if ranks.main:
        (folder / COLOR_TABLE).write_text(color_table(), encoding="utf-8")


def _predict_shared(cohort: Cohort, out: Path, job: _Job, *, overwrite: bool, ranks: Ranks) -> Counts:
    """One of several processes: predict this process's patients; rank 0 writes everyone's rows in order."""
    patients = _patient_order(cohort)
    mine = replace(cohort, cases=[c for c in cohort.cases if ranks.mine(patients[c.pid])],
                   problems=cohort.problems if ranks.main else [])
    samples = iter_samples(mine, job.predictor.preprocessing, job.predictor.vocabulary, measure=job.measure,
                           readers=job.readers)
    everyone = gather(list(_rows(samples, patients, len(mine.problems), job)), ranks)
    counts = Counts(0, 0)
    if ranks.main:
        several = _more_than_two_scans(cohort)
        with ResultsWriter(out, job.predictor, overwrite=overwrite, scans_column=several) as results:
            _write(sorted((row for part in everyone for row in part), key=lambda row: row.order), results,
                   job.measurements)
        counts = Counts(results.predicted, results.failed)
    return Counts(*gather(counts, ranks)[0])  # also waits for rank 0's file


def _more_than_two_scans(cohort: Cohort) -> bool:
    """Whether some nodule has several follow-ups: then results.csv names each row's pair of scans."""
    return any(case.history for case in cohort.cases)


def _patient_order(cohort: Cohort) -> Dict[str, int]:
    return {pid: i for i, pid in enumerate(dict.fromkeys(case.pid for case in cohort.cases))}


def _write(rows: Iterable[Row], results: ResultsWriter, measurements: Optional[Path]) -> None:
    """Each row into results.csv as it comes; the measurements, when asked for, into their file at the end."""
    measured: Dict[Tuple[str, str, str], Dict[str, object]] = {}  # a nodule's scans once, however many pairs
    for row in rows:
        if row.error:
            results.problem(row.pid, row.nodule, row.error, row.scans or TWO_SCANS)
        else:
            assert row.p_malignant is not None  # a row without an error is a predicted sample's (`_rows`)
            follow_up = row.scans.split("-")[-1]
            at_follow_up = next((m for m in row.measurements or [] if m["timepoint"] == follow_up), None)
            results.prediction(row.pid, row.nodule, row.p_malignant, at_follow_up, row.scans)
            measured.update({(row.pid, row.nodule, str(m["timepoint"])): m for m in row.measurements or []})
    if measurements is not None:
        write_measurements(measurements, list(measured.values()))


def _rows(items: Iterable[Item], patients: Dict[str, int], leading: int, job: _Job) -> Iterator[Row]:
    """One row per item, in the items' order, keyed so that shares of a cohort merge back into that order.

    A key is (the patient's index in the cohort, the item's position in this stream): a patient's
    items all come from one stream, in order. The first `leading` items (problems found in the CSV)
    and items of no known patient come first, by position.
    """
    for position, (item, p) in enumerate(_predicted(items, job)):
        order = (-1 if position < leading else patients.get(item.pid, -1), position)
        if isinstance(item, CaseProblem):
            log.warning("skipped %s", item)
            yield Row(order, item.pid, item.nodule, str(item), None, scans=item.scans)
        else:
            yield Row(order, item.pid, item.nodule, "", p, item.measurements, item.scans)


def _batches(items: Iterable[Item], size: int) -> Iterator[List[Item]]:
    """Runs of items holding `size` samples each (problems ride along where they come)."""
    batch: List[Item] = []
    samples = 0
    for item in items:
        batch.append(item)
        samples += isinstance(item, Sample)
        if samples >= size:
            yield batch
            batch, samples = [], 0
    if batch:
        yield batch


def _predicted(items: Iterable[Item], job: _Job) -> Iterator[Tuple[Item, Optional[float]]]:
    """(item, p_malignant or None for a problem), in the items' order, predicted batch by batch."""
    for batch in _batches(items, job.batch_size):
        rois, _ = RoiSet.collect(batch)
        if job.attention is not None and len(rois):
            probabilities, maps = job.predictor.predict_with_attention(rois, job.attention.method)
            pairs = [item.scans for item in batch if isinstance(item, Sample)]
            _write_attention(job.attention, rois, pairs, maps, job.predictor.preprocessing)
        else:
            probabilities = job.predictor.predict(rois) if len(rois) else np.zeros(0)
        predicted = iter(probabilities)
        for item in batch:
            yield item, None if isinstance(item, CaseProblem) else float(next(predicted))


def file_safe(text: str) -> str:
    """`text` as part of a file name on any system: kept when it is letters, digits, '.', '-' and '_',
    else those characters with the rest as '_' and a short hash of the original, so ids stay apart."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", text)
    return safe if safe == text else f"{safe}-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:8]}"


def attention_stem(folder: Path, pid: str, nodule: str, pair: str, timepoint: str, method: str) -> Path:
    """Where a nodule's attention map at `timepoint` of the pair of scans `pair` goes, less "-heat.nrrd"."""
    which = timepoint if pair == TWO_SCANS else f"{pair}_{timepoint}"
    return folder / f"{file_safe(pid)}_nodule{file_safe(nodule)}_{which}_{method}"


def _write_attention(attention: AttentionOutput, rois: RoiSet, pairs: List[str], maps: np.ndarray,
                     preprocessing: Preprocessing) -> None:
    """{pid}_nodule{n}_{T0|T1}_{method}-heat.nrrd and ..._{method}-labels.nrrd for every case with a scan; a
    nodule's later pairs of scans (`pairs`, e.g. T1-T2) are named {pid}_nodule{n}_{T1-T2}_{T1|T2}_..."""
    for i, (pid, nodule, pair) in enumerate(zip(rois.pids, rois.nodules, pairs)):
        for t, timepoint in enumerate(pair.split("-")):
            center = rois.centers[i, t]
            if not np.all(np.isfinite(center)):  # pre-cut ROIs: no scan to place them in
                continue
            stem = attention_stem(attention.folder, pid, nodule, pair, timepoint, attention.method)
            sitk.WriteImage(heat_image(maps[i, t], center, preprocessing), f"{stem}-heat.nrrd", useCompression=True)
            sitk.WriteImage(label_image(maps[i, t], center, preprocessing), f"{stem}-labels.nrrd",
                            useCompression=True)
