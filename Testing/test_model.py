import pytest
import torch

from CSFNetLib.clinical import FIELDS, ClinicalVocabulary
from CSFNetLib.model import CONFIGS, build_model, count_parameters


def inputs(batch: int, seed: int = 0, vocabulary_size: int = ClinicalVocabulary.default().size):
    g = torch.Generator().manual_seed(seed)
    t0 = torch.rand(batch, 1, 16, 64, 64, generator=g)
    t1 = torch.rand(batch, 1, 16, 64, 64, generator=g)
    clinical = torch.randint(0, vocabulary_size, (batch, len(FIELDS)), generator=g)
    return t0, t1, clinical


@pytest.fixture(scope="module")
def full_model():
    torch.manual_seed(0)
    return build_model("full").eval()


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return build_model("small").eval()


def test_full_model_has_the_papers_parameter_count(full_model):
    n = count_parameters(full_model)
    assert abs(n - 43.2e6) <= 0.01 * 43.2e6, n
    assert count_parameters(full_model, include_embedding=True) > n


def test_paper_widths_give_the_documented_part_sizes(full_model):
    sizes = {name: sum(p.numel() for p in child.parameters()) for name, child in full_model.named_children()}
    assert abs(sizes["backbone"] - 28.5e6) < 0.1e6
    assert abs(sizes["temporal_fusion"] - 14.2e6) < 0.1e6
    assert abs(sizes["cmaf"] - 0.3e6) < 0.01e6


def test_small_model_is_the_same_structure_at_1_to_3_million_parameters(full_model, small_model):
    assert 1e6 <= count_parameters(small_model) <= 3e6
    assert [type(m).__name__ for m in small_model.modules()] == [type(m).__name__ for m in full_model.modules()]


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_forward_maps_two_rois_and_clinical_codes_to_two_logits(config, full_model, small_model):
    model = full_model if config == "full" else small_model
    with torch.inference_mode():
        logits = model(*inputs(2))
    assert logits.shape == (2, 2)
    assert torch.isfinite(logits).all()


def test_backbone_feature_maps_follow_the_paper(full_model):
    x = torch.rand(1, 1, 16, 64, 64)
    shapes = []
    with torch.inference_mode():
        x = full_model.backbone.stem(x)
        shapes.append(tuple(x.shape[1:]))
        for stage in full_model.backbone.stages:
            x = stage(x)
            shapes.append(tuple(x.shape[1:]))
    assert shapes == [(4, 16, 64, 64), (64, 8, 32, 32), (256, 4, 16, 16), (512, 2, 8, 8)]


def test_every_parameter_of_the_full_model_is_used_by_forward():
    torch.manual_seed(1)
    model = build_model("full").train()
    model(*inputs(2, seed=1)).logsumexp(dim=1).sum().backward()
    unused = [n for n, p in model.named_parameters() if "embedding" not in n and (p.grad is None or not p.grad.any())]
    assert unused == []


def test_a_case_does_not_depend_on_the_rest_of_its_batch(small_model):
    t0, t1, clinical = inputs(4, seed=2)
    other_t0, other_t1, other_clinical = inputs(4, seed=3)
    with torch.inference_mode():
        together = small_model(t0, t1, clinical)
        alone = torch.cat([small_model(t0[i:i + 1], t1[i:i + 1], clinical[i:i + 1]) for i in range(4)])
        mates_changed = small_model(
            torch.cat([t0[:1], other_t0[1:]]), torch.cat([t1[:1], other_t1[1:]]),
            torch.cat([clinical[:1], other_clinical[1:]]),
        )
    assert torch.allclose(together, alone, atol=1e-5)
    assert torch.allclose(together[0], mates_changed[0], atol=1e-5)


def test_full_model_is_batch_independent_too(full_model):
    t0, t1, clinical = inputs(3, seed=4)
    with torch.inference_mode():
        together = full_model(t0, t1, clinical)
        alone = full_model(t0[1:2], t1[1:2], clinical[1:2])
    assert torch.allclose(together[1:2], alone, atol=1e-5)


def test_eval_mode_is_deterministic(small_model):
    data = inputs(2, seed=5)
    with torch.inference_mode():
        assert torch.equal(small_model(*data), small_model(*data))


def test_outputs_depend_on_each_input(small_model):
    t0, t1, clinical = inputs(1, seed=6)
    with torch.inference_mode():
        reference = small_model(t0, t1, clinical)
        for changed in (small_model(1 - t0, t1, clinical), small_model(t0, 1 - t1, clinical),
                        small_model(t0, t1, (clinical + 1) % small_model.vocabulary_size)):
            assert not torch.allclose(changed, reference)


def test_temporal_gates_start_at_the_papers_values():
    fresh = build_model("small")
    assert fresh.temporal_fusion.gate_fused.item() == pytest.approx(0.3)
    assert fresh.temporal_fusion.gate_followup.item() == pytest.approx(0.7)


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda t0, t1, c: (t0[:, :, :8], t1, c), r"t0 must have shape \(B, 1, 16, 64, 64\)"),
        (lambda t0, t1, c: (t0, t1[0], c), "t1 must have shape"),
        (lambda t0, t1, c: (t0, t1.to(torch.int16), c), "t1 must be a floating-point"),
        (lambda t0, t1, c: (t0.double(), t1, c), r"t0 is torch.float64 on cpu but the model is torch.float32"),
        (lambda t0, t1, c: (t0, t1[:1], c), "same number of cases"),
        (lambda t0, t1, c: (t0, t1, c.float()), "int64"),
        (lambda t0, t1, c: (t0, t1, c[:, :5]), r"clinical must have shape \(2, 6\)"),
        (lambda t0, t1, c: (t0, t1, c + 10_000), "ClinicalVocabulary"),
    ],
)
def test_bad_inputs_are_refused_with_a_reason(small_model, change, message):
    with pytest.raises((TypeError, ValueError), match=message):
        small_model(*change(*inputs(2)))


@pytest.mark.parametrize("config,message", [("huge", "unknown model configuration 'huge'"),
                                            (["full"], "unknown model configuration"),
                                            ({"name": "x"}, r"lack \['stage_widths'\]")])
def test_unknown_configuration_is_refused(config, message):
    with pytest.raises(ValueError, match=message):
        build_model(config)


def test_the_inference_fast_path_computes_what_the_trained_model_computes():
    from CSFNetLib.inference import fast_inference_model

    torch.manual_seed(5)
    model = build_model("small").eval()
    for module in model.modules():  # trained-looking batch-norm statistics and affine terms
        if isinstance(module, torch.nn.BatchNorm3d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.1, 0.1)
    fast = fast_inference_model(model)
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in fast.modules())
    assert any(isinstance(m, torch.nn.BatchNorm3d) for m in model.modules())  # the original is untouched
    t0, t1 = torch.rand(2, 3, 1, *model.config.input_size_zyx)
    clinical = torch.randint(0, model.vocabulary_size, (3, 6))
    with torch.inference_mode():
        expected, found = model(t0, t1, clinical), fast(t0, t1, clinical)
    assert torch.allclose(found, expected, rtol=1e-4, atol=1e-5)
    for options in ({"channels_last": True}, {"images_per_pass": 2}, {"images_per_pass": 4}):
        with torch.inference_mode():  # 6 ROIs: three passes of 2, or a pass of 4 and one of 2
            assert torch.allclose(fast_inference_model(model, **options)(t0, t1, clinical), expected,
                                  rtol=1e-4, atol=1e-5), options


def test_the_backbone_runs_in_passes_only_in_eval_mode():
    """Batch-norm statistics in training come from the whole batch: passes of a few ROIs would change them."""
    torch.manual_seed(6)
    model = build_model("small")
    model.images_per_pass = 2
    t0, t1 = torch.rand(2, 3, 1, *model.config.input_size_zyx)
    calls = []
    model.backbone.register_forward_hook(lambda module, args, output: calls.append(len(args[0])))
    model.train()
    model.spatial_features(t0, t1)
    model.eval()
    with torch.no_grad():
        model.spatial_features(t0, t1)
    assert calls == [6, 2, 2, 2]
