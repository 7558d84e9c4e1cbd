"""The blocks compute the formulas of the specification (docs/model.md), not just the shapes."""

import torch

from CSFNetLib.model.blocks import CBAM, ResidualBlock
from CSFNetLib.model.cmaf import CrossModalAttentionFusion
from CSFNetLib.model.temporal import ImageVector, TemporalResidualFusion


def test_cbam_is_spatial_attention_times_x_plus_x():
    torch.manual_seed(0)
    cbam = CBAM(8).eval()
    x = torch.rand(2, 8, 4, 6, 6)
    with torch.no_grad():
        cbam.spatial.conv.weight.zero_()  # sigmoid(0) = 0.5 everywhere
        assert torch.allclose(cbam(x), 1.5 * x)
        # the spatial map is computed on channel-attended features: zero channel weights -> map of sigmoid(0)
        cbam.spatial.conv.weight.fill_(1.0)
        cbam.channel.mlp[0].weight.fill_(1.0)
        cbam.channel.mlp[2].weight.fill_(-1e4)  # channel attention ~ 0 for positive inputs
        assert torch.allclose(cbam(x), 1.5 * x, atol=1e-4)  # on x itself the map would be ~1: output 2x


def test_residual_block_sums_body_and_projection_shortcut():
    torch.manual_seed(0)
    block = ResidualBlock(3, 5).eval()
    x = torch.rand(1, 3, 4, 4, 4)
    with torch.no_grad():
        assert torch.allclose(block(x), block.body(x) + block.shortcut(x))


def test_temporal_fusion_is_the_gated_sum_of_conv_output_and_followup():
    fusion = TemporalResidualFusion(4, gate_init=(0.3, 0.7)).eval()
    baseline, followup = torch.rand(2, 1, 4, 2, 4, 4)
    with torch.no_grad():
        fusion.conv.weight.zero_()
        fusion.conv.bias.fill_(2.0)
        expected = torch.sigmoid(torch.tensor(0.3)) * 2.0 + torch.sigmoid(torch.tensor(0.7)) * followup
        assert torch.allclose(fusion(baseline, followup), expected)


def test_image_vector_is_the_fc_stack_on_the_pooled_map_and_tokens_per_position():
    torch.manual_seed(0)
    head = ImageVector(6, 5, 3).eval()
    fused = torch.rand(2, 6, 2, 3, 3)
    with torch.no_grad():
        vector, tokens = head(fused)
        assert torch.allclose(vector, head.mlp(fused.mean(dim=(2, 3, 4))))
        assert tokens.shape == (2, 18, 3)
        assert torch.allclose(tokens[:, 4], head.mlp(fused[:, :, 0, 1, 1]))


def test_cmaf_image_side_uses_the_clinical_query_and_clinical_side_the_image_query():
    torch.manual_seed(0)
    cmaf = CrossModalAttentionFusion(16, heads=4, dropout=0.2).eval()
    image_vector, clinical_vector = torch.rand(2, 1, 16)
    image_tokens, clinical_tokens = torch.rand(1, 5, 16), torch.rand(1, 6, 16)
    with torch.no_grad():
        reference = cmaf(image_vector, image_tokens, clinical_vector, clinical_tokens)
        other_clinical_tokens = cmaf(image_vector, image_tokens, clinical_vector, torch.rand(1, 6, 16))
        other_image_tokens = cmaf(image_vector, torch.rand(1, 5, 16), clinical_vector, clinical_tokens)
        other_clinical_vector = cmaf(image_vector, image_tokens, torch.rand(1, 16), clinical_tokens)
    image_side, clinical_side = slice(0, 16), slice(16, 32)
    # image side: clinical query over image keys/values -> ignores clinical tokens, follows the clinical vector
    assert torch.allclose(reference[:, image_side], other_clinical_tokens[:, image_side])
    assert not torch.allclose(reference[:, image_side], other_clinical_vector[:, image_side])
    # clinical side: image query over clinical keys/values -> ignores image tokens
    assert torch.allclose(reference[:, clinical_side], other_image_tokens[:, clinical_side])
    assert not torch.allclose(reference[:, clinical_side], other_clinical_tokens[:, clinical_side])
