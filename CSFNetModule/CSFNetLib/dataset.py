"""ROIs of a cohort held in memory for training and evaluation, and the training augmentation."""

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .clinical import FIELDS, MISSING_INDEX, UNKNOWN_INDEX, ClinicalVocabulary
from .options import ROI_SIZE_ZYX
from .records import CaseProblem, Sample


@dataclass(frozen=True)
class Augmentation:
    """How training varies its cases: Gaussian noise on the [0, 1] ROIs, and the share of clinical values
    shown as missing or unknown (see `hide_clinical_values`)."""

    noise_sd: float = 0.02
    clinical_hide_rate: float = 0.05


@dataclass
class RoiSet:
    """N nodules: T0 and T1 ROIs (N, 16, 64, 64) float32, clinical rows (N, 6), labels (N,), ids, and
    the ROI centres (N, 2, 3) in each scan's LPS mm (NaN for pre-cut ROIs)."""

    pids: List[str]
    nodules: List[str]
    t0: np.ndarray
    t1: np.ndarray
    clinical: np.ndarray
    labels: np.ndarray
    centers: np.ndarray

    def __len__(self) -> int:
        return len(self.pids)

    @classmethod
    def collect(
        cls, items: Iterable[Union[Sample, CaseProblem]], progress: Optional[Callable[[int], None]] = None
    ) -> Tuple["RoiSet", List[CaseProblem]]:
        """Gather samples (labels -1 when unknown); problems are returned, not dropped."""
        samples: List[Sample] = []
        problems: List[CaseProblem] = []
        for item in items:
            if isinstance(item, CaseProblem):
                problems.append(item)
            else:
                samples.append(item)
            if progress:
                progress(len(samples) + len(problems))
        roi_shape = samples[0].t0.shape if samples else ROI_SIZE_ZYX
        return cls(
            pids=[s.pid for s in samples],
            nodules=[s.nodule for s in samples],
            t0=np.stack([s.t0 for s in samples]) if samples else np.zeros((0, *roi_shape), np.float32),
            t1=np.stack([s.t1 for s in samples]) if samples else np.zeros((0, *roi_shape), np.float32),
            clinical=np.array([s.clinical for s in samples], dtype=np.int64).reshape(len(samples), len(FIELDS)),
            labels=np.array([-1 if s.label is None else s.label for s in samples], dtype=np.int64),
            centers=np.array([s.centers_lps if s.centers_lps is not None else np.full((2, 3), np.nan)
                              for s in samples], dtype=float).reshape(len(samples), 2, 3),
        ), problems

    def subset(self, indices: Union[Sequence[int], np.ndarray]) -> "RoiSet":
        index = np.asarray(indices, dtype=int)
        return RoiSet([self.pids[i] for i in index], [self.nodules[i] for i in index], self.t0[index],
                      self.t1[index], self.clinical[index], self.labels[index], self.centers[index])

    def with_clinical(self, records: Dict[str, Dict[str, str]], vocabulary: ClinicalVocabulary) -> "RoiSet":
        """The same ROIs with clinical rows encoded by `vocabulary` (e.g. one fitted on a fold's training patients)."""
        rows = np.array([vocabulary.encode(records.get(pid)) for pid in self.pids], dtype=np.int64)
        return replace(self, clinical=rows.reshape(len(self), len(FIELDS)))

    def of_patients(self, pids: Iterable[str]) -> "RoiSet":
        wanted = set(pids)
        return self.subset([i for i, pid in enumerate(self.pids) if pid in wanted])

    def save(self, path: Path, key: str = "") -> None:
        """An .npz (ROIs exactly as extracted, float32) with `key` saying what it was made from."""
        partial = Path(path).with_suffix(".partial.npz")
        np.savez(partial, pids=np.array(self.pids), nodules=np.array(self.nodules), t0=self.t0, t1=self.t1,
                 clinical=self.clinical, labels=self.labels, centers=self.centers, key=np.array(key))
        partial.replace(path)

    @classmethod
    def load(cls, path: Path) -> Tuple["RoiSet", str]:
        with np.load(path, allow_pickle=False) as data:
            rois = cls(data["pids"].tolist(), data["nodules"].tolist(), data["t0"].astype(np.float32),
                       data["t1"].astype(np.float32), data["clinical"], data["labels"], data["centers"])
            return rois, str(data["key"])

    def batch(self, index: Union[Sequence[int], np.ndarray], device: torch.device, *,
              augment: Optional[np.random.Generator] = None, augmentation: Augmentation = Augmentation()):
        """Tensors (t0, t1, clinical, labels) of the given cases, augmented when a generator is given."""
        t0, t1, clinical = self.t0[index], self.t1[index], self.clinical[index]
        if augment is not None:
            t0, t1 = augment_pairs(t0, t1, augment, augmentation.noise_sd)
            clinical = hide_clinical_values(clinical, augment, augmentation.clinical_hide_rate)
        as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)  # noqa: E731
        return as_tensor(t0[:, None]), as_tensor(t1[:, None]), as_tensor(clinical), as_tensor(self.labels[index])


def augment_pairs(t0: np.ndarray, t1: np.ndarray, rng: np.random.Generator,
                  noise_sd: float = Augmentation.noise_sd):
    """Random flips (each axis), 90-degree in-plane rotations and a little Gaussian noise.

    A case's two time points get the same flips and rotation, so they stay aligned; noise is drawn
    for each. Applied in training only.
    """
    t0, t1 = t0.copy(), t1.copy()
    for i in range(len(t0)):
        for axis in (0, 1, 2):
            if rng.random() < 0.5:
                t0[i], t1[i] = np.flip(t0[i], axis), np.flip(t1[i], axis)
        turns = int(rng.integers(4))
        t0[i], t1[i] = np.rot90(t0[i], turns, axes=(1, 2)), np.rot90(t1[i], turns, axes=(1, 2))
    t0 = np.clip(t0 + rng.normal(0.0, noise_sd, t0.shape).astype(np.float32), 0.0, 1.0)
    t1 = np.clip(t1 + rng.normal(0.0, noise_sd, t1.shape).astype(np.float32), 0.0, 1.0)
    return t0, t1


def hide_clinical_values(clinical: np.ndarray, rng: np.random.Generator,
                         rate: float = Augmentation.clinical_hide_rate) -> np.ndarray:
    """Each encoded value replaced, with probability `rate`, by the missing row or (as often) the unknown
    row, so that both shared rows are trained: a field not given, or a code the training patients never
    had, then meets a learnt vector at prediction, not its random initial one. Applied in training only."""
    draw = rng.random(clinical.shape)
    hidden = np.where(draw < rate / 2, MISSING_INDEX, clinical)
    return np.where((draw >= rate / 2) & (draw < rate), UNKNOWN_INDEX, hidden).astype(clinical.dtype)
