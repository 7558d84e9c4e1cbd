"""Reduced precision: fp16 autocast keeps p_malignant within 0.01 of fp32; bf16 and CPUs are refused.

A CPU runs 16-bit 3-D convolutions through torch's slow reference kernel (it accumulates in fp32 and
rounds each output, as a GPU does), so the tolerance is checked here on a few cases through the
library's own autocast path; `benchmarks/precision.py` checks a whole synthetic cohort (CPU or GPU).
"""

import copy

import numpy as np
import pytest
import torch

from CSFNetLib.cli import build_parser, main
from CSFNetLib.cohort_csv import read_cohort
from CSFNetLib.dataset import RoiSet
from CSFNetLib.inference import PRECISIONS, Predictor, predict_rois
from CSFNetLib.samples import iter_samples

TOLERANCE = 0.01  # the documented bound on |p(fp16) - p(fp32)| (docs/cli.md, --precision fp16)
NEEDS_CPU_FP16 = pytest.mark.skipif(tuple(int(v) for v in torch.__version__.split(".")[:2]) < (2, 4),
                                    reason="autocast on the CPU has fp16 from torch 2.4")


@pytest.fixture(scope="module")
def demo_rois(synthetic_cohort):
    predictor = Predictor(device="cpu")
    cohort = read_cohort(synthetic_cohort / "cases.csv", synthetic_cohort / "clinical.csv")
    rois, problems = RoiSet.collect(iter_samples(cohort, predictor.preprocessing, predictor.vocabulary))
    assert not problems and len(rois) >= 3
    return predictor, rois


@NEEDS_CPU_FP16
def test_fp16_keeps_p_malignant_within_the_tolerance_of_fp32(demo_rois):
    predictor, rois = demo_rois
    exact = predictor.predict(rois)
    steepest = rois.subset(np.argsort(np.abs(exact - 0.5))[:3])  # where the softmax turns rounding into p most
    reference = predict_rois(predictor.fast_model, steepest, predictor.device, 3)
    reduced = predict_rois(predictor.fast_model, steepest, predictor.device, 3, "fp16")
    gap = np.abs(reduced - reference)
    assert gap.max() <= TOLERANCE, f"fp16: p_malignant moved by {gap.max():.4f}"
    assert gap.max() > 0  # the arithmetic really ran in 16 bits


@NEEDS_CPU_FP16
def test_a_batch_that_overflows_fp16_is_computed_again_in_fp32(demo_rois):
    predictor, rois = demo_rois
    model = copy.deepcopy(predictor.fast_model)
    with torch.no_grad():  # logits of about 1e6: finite in fp32, beyond fp16's 65504
        model.head[-1].weight.mul_(1e6)
        model.head[-1].bias.mul_(1e6)
    one = rois.subset([0])
    reference = predict_rois(model, one, predictor.device)
    found = predict_rois(model, one, predictor.device, 1, "fp16")
    assert np.isfinite(found).all() and np.array_equal(found, reference)


def test_bf16_fp16_on_the_cpu_and_fp16_with_attention_are_refused_before_any_work(synthetic_cohort, tmp_path, capsys):
    with pytest.raises(ValueError, match="bf16 moves p_malignant"):
        Predictor(device="cpu", precision="bf16")
    with pytest.raises(ValueError, match="unknown precision"):
        Predictor(device="cpu", precision="fp8")
    with pytest.raises(ValueError, match="for CUDA GPUs"):
        Predictor(device="cpu", precision="fp16")
    code = main(["predict", "--cases", str(synthetic_cohort / "cases.csv"), "--out", str(tmp_path / "results.csv"),
                 "--device", "cpu", "--precision", "fp16"])
    assert code == 2 and "fp16 is for CUDA GPUs" in capsys.readouterr().err
    code = main(["predict", "--cases", str(synthetic_cohort / "cases.csv"), "--out", str(tmp_path / "results.csv"),
                 "--precision", "fp16", "--attention-dir", str(tmp_path / "maps")])
    assert code == 2 and "--attention-dir runs the network in fp32" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_the_cli_offers_the_library_precisions():
    predict = build_parser()._subparsers._group_actions[0].choices["predict"]
    assert tuple(next(a.choices for a in predict._actions if a.dest == "precision")) == PRECISIONS
