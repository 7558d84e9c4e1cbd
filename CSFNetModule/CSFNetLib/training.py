"""Training CSF-net (or an ablation) on a cohort: the reference recipe, done honestly.

Recipe: Adam (lr 1e-4, betas 0.5 / 0.999), cosine learning-rate schedule, cross-entropy; augmentation
(flips, 90-degree in-plane rotations, noise) in training only; patient-level stratified splits; the
best epoch chosen on the validation split by AUC, early stopping, and the test split used once, at
the end, for the reported figures. A run directory holds `state.pt` after every epoch, so rerunning
the same command resumes where it stopped.
"""

import json
import os
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from .checkpoint import save_checkpoint
from .clinical import ClinicalVocabulary
from .cohort_csv import read_cohort
from .dataset import RoiSet
from .distributed import SINGLE, Ranks, barrier, gather, mean, share, share_buffers
from .inference import predict_rois, resolve_device
from .metrics import classification_metrics, roc_auc
from .model.csfnet import build_model
from .preprocessing import DEFAULT_PREPROCESSING, Preprocessing
from .records import Cohort
from .samples import iter_samples
from .shipped_weights import sha256_of
from .splits import kfold_patients, patient_labels, split_patients


@dataclass(frozen=True)
class TrainSettings:
    """What a run was asked to do; a resumed run must be asked the same."""

    config: str = "small"
    variant: str = "csf-net"
    epochs: int = 60
    batch_size: int = 16
    learning_rate: float = 1e-4
    patience: int = 15
    seed: int = 0
    fractions: tuple = (0.7, 0.15, 0.15)


def load_rois(cohort: Cohort, preprocessing: Preprocessing, vocabulary: ClinicalVocabulary,
              cache: Optional[Path] = None, progress: Optional[Callable[[int], None]] = None):
    """The cohort's ROIs, read once (and kept in `cache`, an .npz, for later runs on the same cohort).

    The cache records the SHA-256 of cases.csv and the preprocessing it was made with and is refused
    for anything else; clinical rows are always encoded afresh from the cohort with `vocabulary`.
    """
    key = json.dumps([sha256_of(cohort.cases_csv), preprocessing.to_dict()], sort_keys=True)
    if cache is not None and cache.exists():
        rois, cached = RoiSet.load(cache)
        cached = json.loads(cached) if cached.startswith("{") else {}
        if cached.get("key") != key:
            raise ValueError(f"{cache} was made from another cases.csv or with other settings; "
                             "delete it or name another")
        return rois.with_clinical(cohort.clinical, vocabulary), cached.get("problems", [])
    rois, problems = RoiSet.collect(iter_samples(cohort, preprocessing, vocabulary), progress)
    problems = [str(p) for p in problems]
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        rois.save(cache, json.dumps({"key": key, "problems": problems}))
    return rois, problems


def train_run(
    rois: RoiSet,
    parts: Dict[str, List[str]],
    vocabulary: ClinicalVocabulary,
    preprocessing: Preprocessing,
    settings: TrainSettings,
    run_dir: Path,
    device: torch.device,
    report: Optional[Callable[[dict], None]] = None,
    metadata: Optional[dict] = None,
    ranks: Ranks = SINGLE,
) -> dict:
    """Train on parts['train'], select on parts['validation'], report on parts['test']; resumable.

    Under torchrun (`ranks`) the model is wrapped in DistributedDataParallel: each process trains on
    its DistributedSampler share of every epoch (the effective batch is `batch_size` x processes),
    losses and validation predictions are combined across processes so that all of them select the
    same epoch, and only rank 0 writes files.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    train, validation, test = (rois.of_patients(parts[k]) for k in ("train", "validation", "test"))
    torch.manual_seed(settings.seed)
    model = build_model(settings.config, vocabulary, settings.variant).to(device)
    network = model
    if ranks.several:
        network = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate, betas=(0.5, 0.999))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.epochs)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(settings.seed)
    state_path = run_dir / "state.pt"
    asked = json.loads(json.dumps(asdict(settings)))  # as it reads back from state.pt (tuples become lists)
    history: List[dict] = []
    best = {"auc": -1.0, "score": -float("inf"), "epoch": -1, "weights": None}
    start_epoch = 0
    if state_path.exists():
        state = torch.load(state_path, map_location=device, weights_only=True)
        if state["settings"] != asked:
            raise ValueError(f"{run_dir} holds a run with other settings {state['settings']}; use a new --out folder")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        rng.bit_generator.state = json.loads(state["rng"])
        torch.set_rng_state(state["torch_rng"].cpu())
        history, start_epoch = json.loads(state["history"]), state["epoch"] + 1
        best = {"auc": state["best_auc"], "score": state["best_score"], "epoch": state["best_epoch"],
                "weights": state["best_weights"]}
    unvalidated = len(validation) == 0
    by_loss = not unvalidated and len(set(validation.labels.tolist())) < 2
    if unvalidated:
        warnings.warn(f"{run_dir}: no validation patients, so no epoch can be chosen: the last one is kept (no early "
                      "stopping); use more patients for a selected model", stacklevel=2)
    elif by_loss:
        warnings.warn(f"{run_dir}: the validation split holds one class only, so the best epoch is chosen by "
                      "validation loss, not AUC; use more patients for a meaningful selection", stacklevel=2)
    for epoch in range(start_epoch, settings.epochs):
        if epoch - best["epoch"] > settings.patience and best["epoch"] >= 0:
            break  # early stopping: no better validation AUC for `patience` epochs
        network.train()
        order, augment = _epoch_order(len(train), epoch, settings.seed, rng, ranks)
        steps = max(1, int(np.ceil(len(order) / settings.batch_size)))
        losses = []
        started = time.perf_counter()
        for step in range(steps):
            index = order[step * settings.batch_size:(step + 1) * settings.batch_size]
            if len(index) < 2:  # batch norm needs two cases
                continue
            t0, t1, clinical, labels = train.batch(index, device, augment=augment)
            loss = loss_fn(network(t0, t1, clinical), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            if report and ranks.main:
                report({"epoch": epoch, "epochs": settings.epochs, "step": step + 1, "steps": steps,
                        "loss": float(np.mean(losses)), "best_auc": best["auc"]})
        schedule.step()
        share_buffers(model, ranks)  # each process's last steps moved its own batch-norm statistics
        if unvalidated:
            val_auc = val_loss = float("nan")
            score = float(epoch)  # the latest epoch is kept
        else:
            val_p = _predict_shared(model, validation, device, ranks)
            val_auc = roc_auc(validation.labels, val_p)
            val_loss = float(-np.mean(np.log(np.clip(np.where(validation.labels == 1, val_p, 1 - val_p), 1e-7, 1))))
            score = -val_loss if by_loss else val_auc
            score = score if np.isfinite(score) else -float("inf")  # a diverged epoch (NaN outputs) is never best
        history.append({"epoch": epoch, "loss": mean(np.mean(losses), ranks), "val_auc": val_auc, "val_loss": val_loss,
                        "seconds": round(time.perf_counter() - started, 2)})
        if best["weights"] is None or score > best["score"]:
            best = {"auc": val_auc, "score": score, "epoch": epoch,
                    "weights": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
        if ranks.main:
            _save_state(state_path, {"settings": asked, "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                    "rng": json.dumps(rng.bit_generator.state), "torch_rng": torch.get_rng_state(),
                    "history": json.dumps(history), "epoch": epoch, "best_auc": best["auc"],
                    "best_score": best["score"], "best_epoch": best["epoch"], "best_weights": best["weights"]})
        if report and ranks.main:
            report({"epoch": epoch, "epochs": settings.epochs, "step": steps, "steps": steps,
                    "loss": history[-1]["loss"], "val_auc": val_auc, "best_auc": best["auc"], "done": True})
    model.load_state_dict(best["weights"])
    test_scores = _predict_shared(model, test, device, ranks)
    summary = {
        "settings": asdict(settings),
        "device": str(device),
        "processes": ranks.world,
        "patients": {k: len(v) for k, v in parts.items()},
        "nodules": {"train": len(train), "validation": len(validation), "test": len(test)},
        "malignant_share_train": float(train.labels.mean()) if len(train) else None,
        "epochs_run": len(history),
        "best_epoch": best["epoch"],
        "validation_auc": best["auc"],
        "selected_by": ("the last epoch (no validation patients)" if unvalidated
                        else "validation loss (one-class validation split)" if by_loss else "validation AUC"),
        "test_metrics": classification_metrics(test.labels, test_scores) if len(test) else None,
        "train_seconds": round(sum(h["seconds"] for h in history), 1),
    }
    if ranks.main:
        (run_dir / "history.json").write_text(json.dumps(history, indent=1), encoding="utf-8")
        (run_dir / "split.json").write_text(json.dumps(parts, indent=1), encoding="utf-8")
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
        save_checkpoint(run_dir / "model.pt", model.cpu(), preprocessing, vocabulary,
                        metadata={**(metadata or {}), "training": summary})
    barrier(ranks)
    return summary


def _epoch_order(n: int, epoch: int, seed: int, rng: np.random.Generator, ranks: Ranks):
    """This process's case order for one epoch and the random generator for its augmentation."""
    if not ranks.several:
        return rng.permutation(n), rng
    sampler = DistributedSampler(range(n), num_replicas=ranks.world, rank=ranks.rank, shuffle=True, seed=seed)
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


def _save_state(path: Path, state: dict) -> None:
    partial = path.with_suffix(".partial")
    torch.save(state, partial)
    os.replace(partial, path)  # an interruption never leaves a half-written state


def train(
    cases_csv: Path,
    clinical_csv: Optional[Path],
    run_dir: Path,
    settings: TrainSettings,
    folds: int = 1,
    device: str = "auto",
    preprocessing: Optional[Preprocessing] = None,
    roi_cache: Optional[Path] = None,
    report: Optional[Callable[[dict], None]] = None,
    metadata: Optional[dict] = None,
    ranks: Ranks = SINGLE,
) -> dict:
    """Train on a cohort: one train / validation / test split, or `folds`-fold cross-validation.

    `device` is a name ("auto", "cuda", ...) or, under torchrun, the process's own device.
    """
    preprocessing = preprocessing or DEFAULT_PREPROCESSING
    cohort = read_cohort(cases_csv, clinical_csv)
    labels = patient_labels(cohort.cases)
    torch_device = device if isinstance(device, torch.device) else resolve_device(device)
    if folds > 1:
        splits = []
        for k, (rest, test) in enumerate(kfold_patients(labels, folds, settings.seed)):
            inner = split_patients({p: labels[p] for p in rest}, (0.82, 0.18, 0.0), settings.seed + k)
            splits.append({"train": inner["train"], "validation": inner["validation"], "test": test})
    else:
        splits = [split_patients(labels, settings.fractions, settings.seed)]
    if ranks.several and roi_cache is not None and not ranks.main:
        barrier(ranks)  # rank 0 writes the ROI cache first; the others then read it
    rois, problems = load_rois(cohort, preprocessing, ClinicalVocabulary.default(), roi_cache)
    if ranks.several and roi_cache is not None and ranks.main:
        barrier(ranks)
    for problem in problems:
        warnings.warn(f"skipped: {problem}", stacklevel=2)
    cohort_info = {"cases_csv": str(cases_csv), "patients": len(labels), "nodules": len(cohort.cases),
                   "skipped_cases": problems}
    meta = {**(metadata or {}), "cohort": cohort_info}

    def run(parts: Dict[str, List[str]], folder: Path) -> dict:
        # the clinical vocabulary comes from the run's training patients only
        vocabulary = ClinicalVocabulary.fit(cohort.clinical[p] for p in parts["train"] if p in cohort.clinical)
        return train_run(rois.with_clinical(cohort.clinical, vocabulary), parts, vocabulary, preprocessing,
                         settings, folder, torch_device, report, meta, ranks)

    if folds == 1:
        return run(splits[0], run_dir)
    results = [run(parts, run_dir / f"fold_{k + 1}") for k, parts in enumerate(splits)]
    aucs = [r["test_metrics"]["auc"] for r in results]
    summary = {"folds": results, "test_auc_mean": float(np.mean(aucs)), "test_auc_sd": float(np.std(aucs))}
    if ranks.main:
        (run_dir / "cv_summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary
