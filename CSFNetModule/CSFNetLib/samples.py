"""A cohort's cases as network inputs: each nodule's two ROIs cut from its scans, streamed patient by patient."""

import warnings
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Optional, Set, Tuple, Union

import numpy as np
import SimpleITK as sitk

from .clinical import ClinicalVocabulary
from .images import different_patients, read_image
from .parallel import ordered_map
from .preprocessing import DEFAULT_PREPROCESSING, Preprocessing, extract_roi, lung_mask
from .records import CaseProblem, Cohort, NoduleCase, Sample, TimepointRow, cases_by_patient


def iter_samples(
    cohort: Cohort,
    preprocessing: Preprocessing = DEFAULT_PREPROCESSING,
    vocabulary: Optional[ClinicalVocabulary] = None,
    *,
    measure: bool = False,
    readers: int = 1,
) -> Iterator[Union[Sample, CaseProblem]]:
    """Every case of `cohort` as a `Sample`, or a `CaseProblem` when it cannot be made.

    The problems found while reading the CSV come first. Then patient by patient, in the cohort's
    order: each scan of the patient is read once (and its lung mask computed once), shared by the
    nodules in it, and released before the next patient, so a cohort larger than memory streams.
    With `readers` > 1 that many processes prepare the next patients while the caller works (runs
    the network) on the ones before. With `measure`, each sample carries its nodule's measurements.csv
    rows at every scan (`CSFNetLib.measure`), made from the same scans, once per nodule.
    """
    vocabulary = vocabulary or ClinicalVocabulary.default()
    yield from cohort.problems
    jobs = (_PatientJob(cases, vocabulary.encode_patient(pid, cohort.clinical.get(pid)), preprocessing, measure,
                        str(cohort.cases_csv)) for pid, cases in cases_by_patient(cohort.cases).items())
    for items, messages in ordered_map(_patient_items, jobs, readers):
        for message in messages:  # warnings met in a reader process, shown here
            warnings.warn(message, stacklevel=2)
        yield from items


class _PatientJob(NamedTuple):
    """One patient's work for a reader: the nodule cases, their encoded clinical rows, how to read them."""

    cases: List[NoduleCase]
    clinical: List[int]
    preprocessing: Preprocessing
    measure: bool
    cases_csv: str


def _patient_items(job: _PatientJob) -> Tuple[List[Union[Sample, CaseProblem]], List[Warning]]:
    """The samples (or problems) of one patient's cases, from its scans read once, and the warnings met."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        items = _read_patient(job)
    return items, [w.message for w in caught if isinstance(w.message, Warning)]


def _read_patient(job: _PatientJob) -> List[Union[Sample, CaseProblem]]:
    if job.measure:
        from .measure.cohort import measure_case

    scans = _PatientScans(job.preprocessing)
    measured: Dict[str, List[Dict[str, object]]] = {}  # a nodule's rows at every scan, measured once
    pairs_checked: Set[Tuple[Path, Path]] = set()
    items: List[Union[Sample, CaseProblem]] = []
    for case in job.cases:
        rois = []
        for row in (case.t0, case.t1):
            try:
                rois.append(scans.roi(row))
            except (OSError, ValueError, RuntimeError) as exc:
                items.append(CaseProblem(case.pid, case.nodule, f"{row.timepoint}: {exc}", job.cases_csv, row.row,
                                         case.scans))
                break
        else:
            if (case.t0.image, case.t1.image) not in pairs_checked:
                pairs_checked.add((case.t0.image, case.t1.image))
                _warn_if_different_patients(case, scans, job.cases_csv)
            if job.measure and case.nodule not in measured:
                measured[case.nodule] = measure_case(case, scans.image)
            items.append(Sample(case.pid, case.nodule, rois[0], rois[1], list(job.clinical), case.label,
                                (case.t0.center_lps, case.t1.center_lps), measured.get(case.nodule), case.scans))
    return items


def _warn_if_different_patients(case: NoduleCase, scans: "_PatientScans", cases_csv: str) -> None:
    """Scans paired as one nodule's T0 and T1 whose DICOM headers name different patients: a warning (some
    de-identification gives each study its own id); nothing is known of image files without such tags."""
    differ = different_patients(scans.image(case.t0), scans.image(case.t1)) if case.t0.image != case.t1.image else ""
    if differ:
        warnings.warn(f"{cases_csv}: patient {case.pid} nodule {case.nodule}: the {case.t0.timepoint} scan (line "
                      f"{case.t0.row}) and the {case.t1.timepoint} scan (line {case.t1.row}) are DICOM series of "
                      f"different patients ({differ}): check that cases.csv pairs this patient's own scans",
                      stacklevel=2)


class _PatientScans:
    """One patient's scans, each read (and lung-masked) at most once; a failed read is remembered too."""

    def __init__(self, preprocessing: Preprocessing):
        self.preprocessing = preprocessing
        self._scans: Dict[Path, Union[Tuple[sitk.Image, Optional[sitk.Image]], Exception]] = {}

    def image(self, row: TimepointRow) -> sitk.Image:
        return self._scan(row)[0]

    def _scan(self, row: TimepointRow) -> Tuple[sitk.Image, Optional[sitk.Image]]:
        if row.image not in self._scans:
            self._scans[row.image] = self._load(row.image)
        scan = self._scans[row.image]
        if isinstance(scan, Exception):
            raise scan
        return scan

    def roi(self, row: TimepointRow) -> np.ndarray:
        image, mask = self._scan(row)
        try:
            return extract_roi(image, row.center_lps, self.preprocessing, mask)
        except (ValueError, RuntimeError) as exc:
            raise ValueError(f"{row.image}: {exc}") from exc

    def _load(self, path: Path) -> Union[Tuple[sitk.Image, Optional[sitk.Image]], Exception]:
        p = self.preprocessing
        try:
            image = read_image(path)
            mask = lung_mask(image, p.lung_threshold_hu, p.lung_dilation_mm) if p.lung_mask else None
        except (OSError, ValueError, RuntimeError) as exc:
            return exc
        return image, mask

