"""How well one-click matching (`CSFNetLib.match`) finds a nodule in the patient's other scan, and how fast.

    python benchmarks/match_accuracy.py --patients 100 --resolved 40 --out docs/match-accuracy.md
    python benchmarks/match_accuracy.py --patients 5 --size full      # whole-chest scans: the time per pair
    python benchmarks/match_accuracy.py --patients 3                  # a quick look

Generates synthetic patients whose follow-up lies turned up to 6 degrees, moved up to 25 mm and breathed
0.95-1.05 in height against the baseline (`synthesize_patient(..., motion=MOTIONS["large"])`). Each pair of
scans is registered once; every nodule is then clicked (its true centre moved by up to --jitter-mm) in
one scan and looked for in the other, both ways: baseline -> follow-up and follow-up -> baseline. A
nodule that resolved is absent from the follow-up; --resolved more patients have every nodule resolved
(their anatomy unchanged), so that absent nodules are counted in number. As a check that unrelated scans
are not matched with confidence, each patient's baseline is also paired with the next patient's follow-up.

Reports: the share of present nodules found within their own radius of the truth (and the error in mm),
the share of absent ones reported not present, what was undecided, wrong matches across patients, and
the time per pair of scans (registration and every nodule) and per nodule.
"""

import argparse
import csv
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import List, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "CSFNetModule"))

from CSFNetLib.match.nodule import FOUND, MIN_CORRELATION, NOT_PRESENT, match_nodule  # noqa: E402
from CSFNetLib.match.registration import register_lungs  # noqa: E402
from CSFNetLib.measure.segmentation import NoNoduleError, segment_nodule  # noqa: E402
from CSFNetLib.synth import SyntheticPatient, synthesize_patient  # noqa: E402
from CSFNetLib.synth.scanner import MOTIONS  # noqa: E402


@dataclass
class Trial:
    """One nodule clicked in one scan and looked for in another."""

    pid: str
    nodule: int
    direction: str  # "T0 -> T1", "T1 -> T0", or "other patient"
    diameter_mm: float  # at the target scan (0: absent there)
    status: str
    error_mm: float  # found centre to the true centre (nan unless found)
    registration_mm: float  # the registration's own position to the truth
    seconds: float
    note: str
    correlation: float  # of the nodule's neighbourhoods after alignment
    found_from_aligned_mm: float  # the found centre to the aligned position (nan unless found)
    source_diameter_mm: float
    isolable: bool = True  # the segmentation, seeded at the true centre in the target, finds it within its radius



def run(patients: int, resolved: int, seed: int, size: str, jitter_mm: float) -> tuple:
    rng = np.random.default_rng(seed)
    trials: List[Trial] = []
    pair_seconds: List[float] = []
    previous: Optional[SyntheticPatient] = None
    for index in range(patients + resolved):
        gone = index >= patients  # every nodule resolved by the follow-up: all absent there
        patient = synthesize_patient(seed, index, size, motion=MOTIONS["large"], resolved=gone)
        started = time.perf_counter()
        registration = register_lungs(patient.images["T0"], patient.images["T1"])
        seconds = time.perf_counter() - started
        for source, target in (("T0", "T1"), ("T1", "T0")):
            mapping = registration if source == "T0" else registration.reversed()
            for nodule in patient.nodules:
                if nodule.diameter(source) <= 0:
                    continue  # nothing to click
                trials.append(_trial(patient, patient, nodule, source, target, mapping, rng, jitter_mm))
                seconds += trials[-1].seconds
        if not gone:  # the time of a pair: registration and every nodule looked for both ways
            pair_seconds.append(seconds)
        if previous is not None and not gone:  # this patient's follow-up against the previous patient's baseline
            mapping = register_lungs(previous.images["T0"], patient.images["T1"])
            for nodule in previous.nodules:
                if nodule.diameter("T0") > 0:
                    trial = _trial(previous, patient, nodule, "T0", "T1", mapping, rng, jitter_mm)
                    trial.direction = "other patient"
                    trials.append(trial)
        previous = patient
        print(f"{patient.spec.pid}: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return trials, pair_seconds


def _trial(source_patient: SyntheticPatient, target_patient: SyntheticPatient, nodule, source: str, target: str,
           registration, rng: np.random.Generator, jitter_mm: float) -> Trial:
    offset = rng.normal(size=3)
    click = source_patient.nodule_center_lps(nodule, source) + offset / np.linalg.norm(offset) * rng.uniform(
        0.0, jitter_mm)
    started = time.perf_counter()
    match = match_nodule(source_patient.images[source], click, target_patient.images[target], registration)
    seconds = time.perf_counter() - started
    truth = source_patient.nodule_center_lps(nodule, target)
    error = float(np.linalg.norm(match.centre_lps - truth)) if match.centre_lps is not None else float("nan")
    registered = (float(np.linalg.norm(match.registered_lps - truth)) if match.registered_lps is not None
                  else float("nan"))
    from_aligned = (float(np.linalg.norm(match.centre_lps - match.aligned_lps))
                    if match.centre_lps is not None and match.aligned_lps is not None else float("nan"))
    return Trial(source_patient.spec.pid, nodule.nodule_id, f"{source} -> {target}", nodule.diameter(target),
                 match.status, error, registered, seconds, match.note, match.correlation, from_aligned,
                 nodule.diameter(source), _isolable(target_patient.images[target], truth, nodule.diameter(target)))


def _isolable(image, truth_lps: np.ndarray, diameter_mm: float) -> bool:
    """Whether the segmentation, seeded at the nodule's true centre, finds it there (within its radius): not so
    for the generator's nodules that lie inside or along a vessel as dense as they are."""
    if diameter_mm <= 0:
        return True
    try:
        return bool(np.linalg.norm(segment_nodule(image, truth_lps).centre_lps - truth_lps) <= diameter_mm / 2.0)
    except NoNoduleError:
        return False


def report(trials: List[Trial], pair_seconds: List[float], patients: int, resolved: int, seed: int, size: str,
           jitter_mm: float) -> str:
    same = [t for t in trials if t.direction != "other patient"]
    present = [t for t in same if t.diameter_mm > 0]
    absent = [t for t in same if t.diameter_mm <= 0]
    within = [t for t in present if t.status == FOUND and t.error_mm <= t.diameter_mm / 2.0]
    errors = np.array([t.error_mm for t in present if t.status == FOUND])
    isolable = [t for t in present if t.isolable]
    lines = [
        "# Matching a nodule across scans: accuracy and time",
        "",
        f"Command: `python benchmarks/match_accuracy.py --patients {patients} --resolved {resolved} --seed {seed} "
        f"--size {size} --jitter-mm {jitter_mm:g}`. Synthetic phantoms (not patient data): the follow-up turned up "
        "to 6 degrees, moved up to 25 mm and breathed 0.95-1.05 in height against the baseline; every nodule "
        f"clicked within {jitter_mm:g} mm of its centre in one scan and looked for in the other, both ways. "
        f"{resolved} more patients have every nodule resolved by the follow-up (absent there; their anatomy, "
        "vessels included, unchanged).",
        "",
        "| | n | result |",
        "|---|---|---|",
        f"| present nodules found within their own radius | {len(present)} | {_share(len(within), len(present))} |",
        f"| the same, of those the segmentation isolates from a click on their true centre | {len(isolable)} | "
        f"{_share(sum(t in within for t in isolable), len(isolable))} |",
        f"| absent (resolved) nodules reported not present | {len(absent)} | "
        f"{_share(sum(t.status == NOT_PRESENT for t in absent), len(absent))} |",
        f"| found centre to the truth, mm: median / p90 / max | {len(errors)} | {_spread(errors)} |",
        f"| registration alone to the truth, mm: median / p90 / max | {len(present)} | "
        f"{_spread(np.array([t.registration_mm for t in present]))} |",
        f"| present nodules not found or undecided | {len(present)} | "
        f"{sum(t.status != FOUND for t in present)} |",
        f"| absent nodules found (a wrong match) | {len(absent)} | {sum(t.status == FOUND for t in absent)} |",
    ]
    for direction in ("T0 -> T1", "T1 -> T0"):
        chosen = [t for t in present if t.direction == direction]
        hits = sum(1 for t in chosen if t in within)
        lines.append(f"| {direction}: found within radius | {len(chosen)} | {_share(hits, len(chosen))} |")
    other = [t for t in trials if t.direction == "other patient"]
    lines += [
        f"| another patient's follow-up: 'found' (a confident wrong match) | {len(other)} | "
        f"{_share(sum(t.status == FOUND for t in other), len(other))} |",
        "",
        "Neighbourhood correlation after alignment (the undecided threshold is "
        f"{MIN_CORRELATION:g}): same patient, found: {_low(np.array([t.correlation for t in within]))}; "
        f"another patient: {_spread(np.array([t.correlation for t in other]), 2)} (median / p90 / max).",
        "",
        f"Time per pair of scans (registration + every nodule both ways), s: {_spread(np.array(pair_seconds), 1)} "
        f"(median / p90 / max over {len(pair_seconds)} patients); per nodule, s: "
        f"{_spread(np.array([t.seconds for t in same]), 2)}.",
        "",
    ]
    misses = [t for t in trials if (t.direction == "other patient" and t.status == FOUND)
              or (t.direction != "other patient" and ((t.diameter_mm > 0 and t not in within)
                                                      or (t.diameter_mm <= 0 and t.status != NOT_PRESENT)))]
    if misses:
        lines += ["Every miss (isolable: whether the segmentation finds the nodule from a click on its true centre in "
                  "that scan):", "",
                  "| patient | nodule | direction | diameter at target | isolable | result | error mm | note |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {t.pid} | {t.nodule} | {t.direction} | {t.diameter_mm:.1f} | {'yes' if t.isolable else 'no'} | "
                  f"{t.status} | {t.error_mm:.1f} | {t.note} |" for t in misses]
        lines.append("")
    return "\n".join(lines)


def _low(values: np.ndarray) -> str:
    """min / p10 / median of `values`."""
    values = values[np.isfinite(values)]
    if not len(values):
        return "none"
    return " / ".join(f"{v:.2f}" for v in (values.min(), np.percentile(values, 10), np.median(values))) + \
        " (min / p10 / median)"


def _share(count: int, total: int) -> str:
    return f"{count}/{total} ({100.0 * count / total:.0f} %)" if total else "none"


def _spread(values: np.ndarray, digits: int = 1) -> str:
    values = values[np.isfinite(values)]
    if not len(values):
        return "none"
    return " / ".join(f"{v:.{digits}f}" for v in (np.median(values), np.percentile(values, 90), values.max()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=3)
    parser.add_argument("--resolved", type=int, default=1, help="more patients whose nodules all resolved")
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--size", choices=["small", "full"], default="small")
    parser.add_argument("--jitter-mm", type=float, default=1.5)
    parser.add_argument("--out", help="write the markdown report here (else print it)")
    parser.add_argument("--trials-csv", help="also write every trial, one row each, here")
    args = parser.parse_args()
    trials, pair_seconds = run(args.patients, args.resolved, args.seed, args.size, args.jitter_mm)
    if args.trials_csv:
        with open(args.trials_csv, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(Trial)])
            writer.writeheader()
            writer.writerows(asdict(trial) for trial in trials)
    text = report(trials, pair_seconds, args.patients, args.resolved, args.seed, args.size, args.jitter_mm)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
