"""Training CSF-net (or an ablation) on a cohort: the reference recipe, done honestly.

Recipe: Adam (lr 1e-4, betas 0.5 / 0.999), cosine learning-rate schedule, cross-entropy; augmentation
(flips, 90-degree in-plane rotations, noise, hidden clinical values) in training only; patient-level
stratified splits; the best epoch chosen on the validation split by AUC, early stopping, and the test
split used once, at the end, for the reported figures. Every number of the recipe is a field of
`TrainSettings`. A run folder holds `state.pt` after every epoch, so rerunning the same command
resumes where it stopped.
"""

import json
import logging
import os
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from .checkpoint import save_checkpoint
from .clinical import ClinicalVocabulary
from .cohort_csv import read_cohort
from .dataset import Augmentation, RoiSet
from .distributed import SINGLE, Ranks, barrier, gather, mean, share, share_buffers
from .errors import OtherRun, UnusableOptions
from .inference import predict_rois, resolve_device
from .metrics import classification_metrics, roc_auc
from .model.csfnet import build_model
from .options import ConfigName, Variant
from .preprocessing import DEFAULT_PREPROCESSING, Preprocessing
from .records import Cohort
from .samples import iter_samples
from .shipped_weights import sha256_of
from .splits import kfold_patients, patient_labels, split_patients

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    """Every number of the recipe; recorded in the run folder, and a resumed run must be asked the same."""

    config: ConfigName = "small"
    variant: Variant = "csf-net"
    epochs: int = 60
    batch_size: int = 16
    learning_rate: float = 1e-4
    adam_betas: Tuple[float, float] = (0.5, 0.999)
    patience: int = 15  # early stopping: epochs without a better validation score
    seed: int = 0
    fractions: Tuple[float, float, float] = (0.7, 0.15, 0.15)  # train / validation / test patients
    fold_fractions: Tuple[float, float] = (0.82, 0.18)  # K-fold: each fold's other patients, train / validation
    augmentation: Augmentation = Augmentation()

    def record(self) -> Dict[str, Any]:
        """The settings as state.pt and summary.json keep them (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_record(cls, record: Dict[str, Any]) -> "TrainSettings":
        """Settings read back; a field the record lacks (a run from before it existed) takes its default."""
        known = {f.name for f in fields(cls)}
        values: Dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in record.items() if k in known}
        if "augmentation" in values:
            values["augmentation"] = Augmentation(**values["augmentation"])
        return cls(**values)


@dataclass(frozen=True)
class TrainingStatus:
    """What a progress display hears: after every step, and once more when an epoch is done."""

    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float
    best_auc: float
    val_auc: Optional[float] = None
    done: bool = False


TrainingReport = Callable[[TrainingStatus], None]


@dataclass
class BestEpoch:
    """The epoch selected so far, with its weights."""

    auc: float = -1.0
    score: float = -float("inf")
    epoch: int = -1
    weights: Optional[Dict[str, torch.Tensor]] = None


@dataclass
class TrainingState:
    """A run's progress after its last finished epoch: what `state.pt` holds, so that a rerun resumes."""

    settings: Dict[str, Any]
    model: Dict[str, torch.Tensor]
    optimizer: Dict[str, Any]
    schedule: Dict[str, Any]
    rng: str  # the numpy generator's state, as JSON
    torch_rng: torch.Tensor
    epoch: int
    history: List[Dict[str, Any]] = field(default_factory=list)
    best: BestEpoch = field(default_factory=BestEpoch)

    def save(self, path: Path) -> None:
        """Written whole or not at all: an interruption never leaves a half-written state."""
        flat = {**{f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("history", "best")},
                "history": json.dumps(self.history), "best_auc": self.best.auc, "best_score": self.best.score,
                "best_epoch": self.best.epoch, "best_weights": self.best.weights}
        partial = path.with_suffix(".partial")
        torch.save(flat, partial)
        os.replace(partial, path)

    @classmethod
    def load(cls, path: Path, device: torch.device) -> "TrainingState":
        flat = torch.load(path, map_location=device, weights_only=True)
        best = BestEpoch(flat["best_auc"], flat["best_score"], flat["best_epoch"], flat["best_weights"])
        return cls(flat["settings"], flat["model"], flat["optimizer"], flat["schedule"], flat["rng"], flat["torch_rng"],
                   flat["epoch"], json.loads(flat["history"]), best)


def load_rois(cohort: Cohort, preprocessing: Preprocessing, vocabulary: ClinicalVocabulary, *,
              cache: Optional[Path] = None, progress: Optional[Callable[[int], None]] = None, readers: int = 1
              ) -> Tuple[RoiSet, List[str]]:
    """The cohort's ROIs, read once (and kept in `cache`, an .npz, for later runs on the same cohort).

    `readers` processes read the scans. The cache records the SHA-256 of cases.csv and the
    preprocessing it was made with and is refused for anything else; clinical rows are always encoded
    afresh from the cohort with `vocabulary`.
    """
    key = json.dumps([sha256_of(cohort.cases_csv), preprocessing.to_dict()], sort_keys=True)
    if cache is not None and cache.exists():
        rois, cached = RoiSet.load(cache)
        cached = json.loads(cached) if cached.startswith("{") else {}
        if cached.get("key") != key:
            raise OtherRun("{cache} was made from another cases.csv or with other settings; delete it or name "
                           "another {roi_cache}", cache=cache)
        return rois.with_clinical(cohort.clinical, vocabulary), cached.get("problems", [])
    rois, problems = RoiSet.collect(iter_samples(cohort, preprocessing, vocabulary, readers=readers), progress)
    reasons = [str(p) for p in problems]
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        rois.save(cache, json.dumps({"key": key, "problems": reasons}))
    return rois, reasons


class _Selection:
    """How the best epoch is chosen: validation AUC; validation loss when the split holds one class;
    the last epoch when there is no validation split (small K-fold cohorts)."""

    def __init__(self, validation: RoiSet, run_dir: Path):
        self.unvalidated = len(validation) == 0
        self.by_loss = not self.unvalidated and len(set(validation.labels.tolist())) < 2
        if self.unvalidated:
            warnings.warn(f"{run_dir}: no validation patients, so no epoch can be chosen: the last one is kept (no "
                          "early stopping); use more patients for a selected model", stacklevel=3)
        elif self.by_loss:
            warnings.warn(f"{run_dir}: the validation split holds one class only, so the best epoch is chosen by "
                          "validation loss, not AUC; use more patients for a meaningful selection", stacklevel=3)

    @property
    def description(self) -> str:
        if self.unvalidated:
            return "the last epoch (no validation patients)"
        return "validation loss (one-class validation split)" if self.by_loss else "validation AUC"

    def score(self, epoch: int, val_auc: float, val_loss: float) -> float:
        """Higher is better; a diverged epoch (NaN outputs) is never the best."""
        if self.unvalidated:
            return float(epoch)
        score = -val_loss if self.by_loss else val_auc
        return score if np.isfinite(score) else -float("inf")


class _Trainer:
    """One run's model, optimiser and random state, and the steps of an epoch."""

    def __init__(self, settings: TrainSettings, vocabulary: ClinicalVocabulary, device: torch.device, ranks: Ranks):
        self.settings, self.device, self.ranks = settings, device, ranks
        torch.manual_seed(settings.seed)
        self.model = build_model(settings.config, vocabulary, settings.variant).to(device)
        self.network: nn.Module = self.model
        if ranks.several:
            ids = [device.index] if device.type == "cuda" else None
            self.network = DistributedDataParallel(self.model, device_ids=ids)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=settings.learning_rate,
                                          betas=settings.adam_betas)
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=settings.epochs)
        self.loss_fn = nn.CrossEntropyLoss()
        self.rng = np.random.default_rng(settings.seed)
        self.history: List[Dict[str, Any]] = []
        self.best = BestEpoch()
        self.next_epoch = 0

    def resume(self, state: TrainingState, run_dir: Path) -> None:
        if TrainSettings.from_record(state.settings) != self.settings:
            raise OtherRun("{run_dir} holds a run with other settings {settings}; choose a new {out} folder",
                           run_dir=run_dir, settings=state.settings)
        self.model.load_state_dict(state.model)
        self.optimizer.load_state_dict(state.optimizer)
        self.schedule.load_state_dict(state.schedule)
        self.rng.bit_generator.state = json.loads(state.rng)
        torch.set_rng_state(state.torch_rng.cpu())
        self.history, self.best, self.next_epoch = state.history, state.best, state.epoch + 1

    def state(self, epoch: int) -> TrainingState:
        return TrainingState(self.settings.record(), self.model.state_dict(), self.optimizer.state_dict(),
                             self.schedule.state_dict(), json.dumps(self.rng.bit_generator.state),
                             torch.get_rng_state(), epoch, self.history, self.best)

    def stops_early(self, epoch: int) -> bool:
        """No better validation score for `patience` epochs."""
        return self.best.epoch >= 0 and epoch - self.best.epoch > self.settings.patience

    def train_epoch(self, epoch: int, train: RoiSet, report: Optional[TrainingReport]) -> Tuple[float, int]:
        """One pass over this process's share of the training cases: (the mean loss over all processes,
        the steps it took)."""
        settings = self.settings
        self.network.train()
        order, rng = _epoch_order(len(train), epoch, settings.seed, self.rng, self.ranks)
        steps = max(1, int(np.ceil(len(order) / settings.batch_size)))
        losses: List[float] = []
        for step in range(steps):
            index = order[step * settings.batch_size:(step + 1) * settings.batch_size]
            if len(index) < 2:  # batch norm needs two cases
                continue
            t0, t1, clinical, labels = train.batch(index, self.device, augment=rng,
                                                   augmentation=settings.augmentation)
            loss = self.loss_fn(self.network(t0, t1, clinical), labels)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            losses.append(float(loss.detach()))
            if report and self.ranks.main:
                report(TrainingStatus(epoch, settings.epochs, step + 1, steps, float(np.mean(losses)), self.best.auc))
        self.schedule.step()
        share_buffers(self.model, self.ranks)  # each process's last steps moved its own batch-norm statistics
        return mean(float(np.mean(losses)), self.ranks), steps

    def validate(self, validation: RoiSet, selection: _Selection) -> Tuple[float, float]:
        """(AUC, mean cross-entropy) on the validation split; NaN without one."""
        if selection.unvalidated:
            return float("nan"), float("nan")
        p = _predict_shared(self.model, validation, self.device, self.ranks)
        p_true = np.where(validation.labels == 1, p, 1 - p)
        return roc_auc(validation.labels, p), float(-np.mean(np.log(np.clip(p_true, 1e-7, 1))))

    def select(self, epoch: int, score: float, val_auc: float) -> None:
        """Keep this epoch's weights when it scores best so far."""
        if self.best.weights is None or score > self.best.score:
            weights = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
            self.best = BestEpoch(val_auc, score, epoch, weights)


def train_run(
    rois: RoiSet,
    parts: Dict[str, List[str]],
    *,
    vocabulary: ClinicalVocabulary,
    preprocessing: Preprocessing,
    settings: TrainSettings,
    run_dir: Path,
    device: torch.device,
    report: Optional[TrainingReport] = None,
    metadata: Optional[Dict[str, Any]] = None,
    ranks: Ranks = SINGLE,
) -> Dict[str, Any]:
    """Train on parts['train'], select on parts['validation'], report on parts['test']; resumable.

    Under torchrun (`ranks`) the model is wrapped in DistributedDataParallel: each process trains on
    its DistributedSampler share of every epoch (the effective batch is `batch_size` x processes),
    losses and validation predictions are combined across processes so that all of them select the
    same epoch, and only rank 0 writes files.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    train, validation, test = (rois.of_patients(parts[k]) for k in ("train", "validation", "test"))
    trainer = _Trainer(settings, vocabulary, device, ranks)
    state_path = run_dir / "state.pt"
    if state_path.exists():
        trainer.resume(TrainingState.load(state_path, device), run_dir)
    selection = _Selection(validation, run_dir)
    for epoch in range(trainer.next_epoch, settings.epochs):
        if trainer.stops_early(epoch):
            break
        started = time.perf_counter()
        loss, steps = trainer.train_epoch(epoch, train, report)
        val_auc, val_loss = trainer.validate(validation, selection)
        trainer.history.append({"epoch": epoch, "loss": loss, "val_auc": val_auc, "val_loss": val_loss,
                                "seconds": round(time.perf_counter() - started, 2)})
        trainer.select(epoch, selection.score(epoch, val_auc, val_loss), val_auc)
        if ranks.main:
            trainer.state(epoch).save(state_path)
            if report:
                report(TrainingStatus(epoch, settings.epochs, steps, steps, loss, trainer.best.auc, val_auc, True))
    summary = _summary(trainer, parts, (train, validation, test), selection, device, ranks)
    if ranks.main:
        _write_run(run_dir, trainer, parts, summary, preprocessing, vocabulary, metadata)
    barrier(ranks)
    return summary


def _summary(trainer: _Trainer, parts: Dict[str, List[str]], splits: Tuple[RoiSet, RoiSet, RoiSet],
             selection: _Selection, device: torch.device, ranks: Ranks) -> Dict[str, Any]:
    """The selected epoch's figures, its test split scored once."""
    train, validation, test = splits
    assert trainer.best.weights is not None, "at least one epoch ran"
    trainer.model.load_state_dict(trainer.best.weights)
    test_scores = _predict_shared(trainer.model, test, device, ranks)
    return {
        "settings": asdict(trainer.settings),
        "device": str(device),
        "processes": ranks.world,
        "patients": {k: len(v) for k, v in parts.items()},
        "nodules": {"train": len(train), "validation": len(validation), "test": len(test)},
        "malignant_share_train": float(train.labels.mean()) if len(train) else None,
        "epochs_run": len(trainer.history),
        "best_epoch": trainer.best.epoch,
        "validation_auc": trainer.best.auc,
        "selected_by": selection.description,
        "test_metrics": classification_metrics(test.labels, test_scores) if len(test) else None,
        "train_seconds": round(sum(h["seconds"] for h in trainer.history), 1),
    }


def _write_run(run_dir: Path, trainer: _Trainer, parts: Dict[str, List[str]], summary: Dict[str, Any],
               preprocessing: Preprocessing, vocabulary: ClinicalVocabulary,
               metadata: Optional[Dict[str, Any]]) -> None:
    (run_dir / "history.json").write_text(json.dumps(trainer.history, indent=1), encoding="utf-8")
    (run_dir / "split.json").write_text(json.dumps(parts, indent=1), encoding="utf-8")
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    save_checkpoint(run_dir / "model.pt", trainer.model.cpu(), preprocessing, vocabulary,
                    metadata={**(metadata or {}), "training": summary})


def _epoch_order(n: int, epoch: int, seed: int, rng: np.random.Generator, ranks: Ranks):
    """This process's case order for one epoch and the random generator for its augmentation."""
    if not ranks.several:
        return rng.permutation(n), rng
    # the sampler needs only len() of its data set, which a range has; the stub asks for a Dataset
    sampler: DistributedSampler[int] = DistributedSampler(
        range(n), num_replicas=ranks.world, rank=ranks.rank, shuffle=True, seed=seed  # type: ignore[arg-type]
    )
    sampler.set_epoch(epoch)  # a new shuffle every epoch, the same on every process
    return np.fromiter(sampler, dtype=np.int64), np.random.default_rng([seed, epoch, ranks.rank])


def _predict_shared(model: nn.Module, rois: RoiSet, device: torch.device, ranks: Ranks) -> np.ndarray:
    """p_malignant for every case of `rois`: each process predicts its share, all get the whole."""
    if not ranks.several:
        return predict_rois(model, rois, device)
    mine = np.asarray(share(np.arange(len(rois)), ranks), dtype=np.int64)
    p = np.zeros(len(rois))
    for index, values in gather((mine, predict_rois(model, rois.subset(mine), device)), ranks):
        p[index] = values
    return p


def _splits(labels: Dict[str, int], settings: TrainSettings, folds: int) -> List[Dict[str, List[str]]]:
    """One train / validation / test split of the patients, or one per fold of K-fold cross-validation."""
    if folds == 1:
        return [split_patients(labels, settings.fractions, settings.seed)]
    splits = []
    inner = (*settings.fold_fractions, 0.0)
    for k, (rest, test) in enumerate(kfold_patients(labels, folds, settings.seed)):
        parts = split_patients({p: labels[p] for p in rest}, inner, settings.seed + k)
        splits.append({"train": parts["train"], "validation": parts["validation"], "test": test})
    return splits


def train(
    cases_csv: Path,
    clinical_csv: Optional[Path],
    run_dir: Path,
    settings: TrainSettings,
    *,
    folds: int = 1,
    device: Union[str, torch.device] = "auto",
    preprocessing: Optional[Preprocessing] = None,
    roi_cache: Optional[Path] = None,
    report: Optional[TrainingReport] = None,
    metadata: Optional[Dict[str, Any]] = None,
    readers: int = 1,
    ranks: Ranks = SINGLE,
) -> Dict[str, Any]:
    """Train on a cohort: one train / validation / test split, or `folds`-fold cross-validation.

    `device` is a name ("auto", "cuda", ...) or, under torchrun, the process's own device.
    """
    if folds < 1:
        raise UnusableOptions("{folds} must be at least 1 (1: one train / validation / test split; K: K-fold "
                              "cross-validation), got {count}", count=folds)
    preprocessing = preprocessing or DEFAULT_PREPROCESSING
    cohort = read_cohort(cases_csv, clinical_csv)
    labels = patient_labels(cohort.cases)
    torch_device = device if isinstance(device, torch.device) else resolve_device(device)
    splits = _splits(labels, settings, folds)
    if ranks.several and roi_cache is not None and not ranks.main:
        barrier(ranks)  # rank 0 writes the ROI cache first; the others then read it
    rois, problems = load_rois(cohort, preprocessing, ClinicalVocabulary.default(), cache=roi_cache,
                               readers=readers)
    if ranks.several and roi_cache is not None and ranks.main:
        barrier(ranks)
    for problem in problems:
        warnings.warn(f"skipped: {problem}", stacklevel=2)
    cohort_info = {"cases_csv": str(cases_csv), "patients": len(labels), "nodules": len(cohort.cases),
                   "skipped_cases": problems}
    meta = {**(metadata or {}), "cohort": cohort_info}

    def run(parts: Dict[str, List[str]], folder: Path) -> Dict[str, Any]:
        # the clinical vocabulary comes from the run's training patients only
        vocabulary = ClinicalVocabulary.fit(cohort.clinical[p] for p in parts["train"] if p in cohort.clinical)
        log.info("training %s in %s", settings.variant, folder)
        return train_run(rois.with_clinical(cohort.clinical, vocabulary), parts, vocabulary=vocabulary,
                         preprocessing=preprocessing, settings=settings, run_dir=folder, device=torch_device,
                         report=report, metadata=meta, ranks=ranks)

    if folds == 1:
        return run(splits[0], run_dir)
    results = [run(parts, run_dir / f"fold_{k + 1}") for k, parts in enumerate(splits)]
    aucs = [r["test_metrics"]["auc"] for r in results]
    summary = {"folds": results, "test_auc_mean": float(np.mean(aucs)), "test_auc_sd": float(np.std(aucs))}
    if ranks.main:
        (run_dir / "cv_summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary
