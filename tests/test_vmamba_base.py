"""AesMamba-V†: the Vanilla-VMamba-B (v0) encoder, its official key scheme, parameter count, registry entry
and TAD66K recipe.

The official names and shapes are generated from the released V/TAD66K key list (VMamba-T,
``official_keys/out_V_TAD.txt``) and the official v0 configurations (VMamba ``vanilla_vmamba_tiny`` /
``vanilla_vmamba_base``: depths [2, 2, 9, 2] / [2, 2, 27, 2], dims 96 / 128, d_state 16, ssm_ratio 2,
dt_rank ceil(C/16), 3×3 conv with bias, 4 scan directions). The generator is first checked to reproduce the
VMamba-T list exactly. Models are built on the meta device (shapes only); the one state dict with values
(76 M random floats) is loaded by assignment into a meta model, so nothing is initialised twice.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import pytest
import torch

from _io_helpers import paper_parameters
from aesmamba_hf import AesMambaForAestheticAssessment, VMambaConfig, get_variant, variant_config
from aesmamba_hf.hub.conversion import (
    CheckpointConversionError,
    convert_official_state_dict,
    convert_vmamba_state_dict,
)
from aesmamba_hf.modeling_vmamba import VMambaModel
from aesmamba_hf.training import load_recipe

KEYS_DIR = Path(os.environ.get("AESMAMBA_OFFICIAL_KEYS", "/work/shared/reference/official_keys"))
OFFICIAL_V0 = {"T": {"depths": [2, 2, 9, 2], "dim": 96}, "B": {"depths": [2, 2, 27, 2], "dim": 128}}
D_STATE, SSM_RATIO, DIRECTIONS, SCORE_CLASSES = 16, 2, 4, 5  # official v0 settings; TAD66K's 5 scale classes


def _block_shapes(dim: int) -> dict[str, tuple[int, ...]]:
    """One official v0 VSS block (``ln_1`` + ``self_attention`` = SS2D), from the official formulas."""
    inner, rank = SSM_RATIO * dim, math.ceil(dim / 16)
    return {
        "ln_1.weight": (dim,), "ln_1.bias": (dim,),
        "self_attention.x_proj_weight": (DIRECTIONS, rank + 2 * D_STATE, inner),
        "self_attention.dt_projs_weight": (DIRECTIONS, inner, rank),
        "self_attention.dt_projs_bias": (DIRECTIONS, inner),
        "self_attention.A_logs": (DIRECTIONS * inner, D_STATE),
        "self_attention.Ds": (DIRECTIONS * inner,),
        "self_attention.in_proj.weight": (2 * inner, dim),
        "self_attention.conv2d.weight": (inner, 1, 3, 3), "self_attention.conv2d.bias": (inner,),
        "self_attention.out_norm.weight": (inner,), "self_attention.out_norm.bias": (inner,),
        "self_attention.out_proj.weight": (dim, inner),
    }


def official_v_keys(size: str) -> dict[str, tuple[int, ...]]:
    """The official AesMamba-V (TAD66K) state-dict names and shapes for the VMamba-``size`` v0 encoder."""
    depths, dim = OFFICIAL_V0[size]["depths"], OFFICIAL_V0[size]["dim"]
    keys = {"img_model.patch_embed.proj.weight": (dim, 3, 4, 4), "img_model.patch_embed.proj.bias": (dim,),
            "img_model.patch_embed.norm.weight": (dim,), "img_model.patch_embed.norm.bias": (dim,)}
    for stage, depth in enumerate(depths):
        width = dim * 2**stage
        for block in range(depth):
            keys.update({f"img_model.layers.{stage}.blocks.{block}.{k}": v for k, v in _block_shapes(width).items()})
        if stage < len(depths) - 1:
            prefix = f"img_model.layers.{stage}.downsample"
            keys.update({f"{prefix}.reduction.weight": (2 * width, 4 * width), f"{prefix}.norm.weight": (4 * width,),
                         f"{prefix}.norm.bias": (4 * width,)})
    feature = dim * 2 ** (len(depths) - 1)
    keys.update({"img_model.norm.weight": (feature,), "img_model.norm.bias": (feature,)})
    head, hidden = "pred_head.aesthetic_head", 256
    for name, rows, cols in (("adatper.0", feature // 4, feature), ("adatper.2", feature, feature // 4),
                             ("heads.0", hidden, feature), ("heads.2", 1, hidden),
                             ("classes_heads.0", hidden, feature), ("classes_heads.2", SCORE_CLASSES, hidden)):
        keys.update({f"{head}.{name}.weight": (rows, cols), f"{head}.{name}.bias": (rows,)})
    return keys


def _count(shapes) -> int:
    return sum(math.prod(s) for s in shapes)


def _released_key_file() -> tuple[dict[str, tuple[int, ...]], dict[str, int]]:
    text = (KEYS_DIR / "out_V_TAD.txt").read_text()
    keys = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, shape, _ = line.split("\t")
            keys[name] = tuple(int(v) for v in re.findall(r"\d+", shape))
    totals = {m.group(1): int(m.group(2)) for m in re.finditer(r"(total_params|img_model)\D+(\d+)", text)}
    return keys, totals


@pytest.mark.skipif(not (KEYS_DIR / "out_V_TAD.txt").is_file(), reason="official key list not available")
def test_the_key_generator_reproduces_the_released_vmamba_t_checkpoint():
    released, totals = _released_key_file()
    generated = official_v_keys("T")
    assert generated == released  # names, order-free, and every shape
    assert _count(generated.values()) == totals["total_params"] == 22_815_590


def test_v_dagger_builds_with_the_official_parameter_count():
    config = variant_config("aesmamba-v-dagger")
    vision = config.vision_config
    assert (vision.embed_dim, vision.depths, vision.hidden_size) == (128, [2, 2, 27, 2], 1024)
    with torch.device("meta"):
        model = AesMambaForAestheticAssessment(config)
        encoder = VMambaModel(VMambaConfig.from_preset("vmamba-b-v0"))
    official = official_v_keys("B")
    total = paper_parameters(model)
    assert total == _count(official.values()) == 76_280_966
    encoder_count = sum(p.numel() for p in encoder.parameters())
    assert encoder_count == _count(v for k, v in official.items() if k.startswith("img_model.")) == 75_229_056
    # VMamba's table: Vanilla-VMamba-B has 76 M parameters with its 1000-class ImageNet head
    assert round((encoder_count + 1024 * 1000 + 1000) / 1e6) == 76
    with pytest.raises(KeyError, match="vmamba-b-v0"):
        VMambaConfig.from_preset("vmamba-b-v2")


def test_v_dagger_converts_a_state_dict_with_the_official_names():
    config = variant_config("aesmamba-v-dagger-tad66k")
    generator = torch.Generator().manual_seed(0)
    official = {k: torch.randn(shape, generator=generator) for k, shape in official_v_keys("B").items()}
    converted = convert_official_state_dict(official, config)
    with torch.device("meta"):
        model = AesMambaForAestheticAssessment(config)
    model.load_state_dict(converted, strict=True, assign=True)
    deepest = "layers.2.blocks.26.self_attention.A_logs"
    assert torch.equal(model.aesmamba.vision_model.layers[2].blocks[26].ss2d.A_logs, official[f"img_model.{deepest}"])
    assert torch.equal(model.heads["aesthetic"].adapter.up.weight, official["pred_head.aesthetic_head.adatper.2.weight"])
    # the same strict rules: a missing key, or a VMamba-T checkpoint for the V† config, is refused by name
    missing = dict(official)
    del missing[f"img_model.{deepest}"]
    with pytest.raises(CheckpointConversionError, match=r"missing keys \(1\).*blocks\.26\.ss2d\.A_logs"):
        convert_official_state_dict(missing, config)
    tiny_names = {k: torch.empty(shape, device="meta") for k, shape in official_v_keys("T").items()}
    with pytest.raises(CheckpointConversionError, match="shape mismatches"):
        convert_official_state_dict(tiny_names, config)
    # the ImageNet VMamba-B v0 checkpoint (vssmbase_dp06: the same block names, no prefix, a classifier head)
    imagenet = {k[len("img_model."):]: v for k, v in official.items() if k.startswith("img_model.")}
    imagenet.update({"head.weight": torch.empty(1000, 1024), "head.bias": torch.empty(1000)})
    encoder = convert_vmamba_state_dict(imagenet, config.vision_config)
    assert len(encoder) == len(imagenet) - 2 and torch.equal(encoder["norm.weight"], imagenet["norm.weight"])


def test_registry_entry_and_recipe(tmp_path, monkeypatch):
    variant = get_variant("aesmamba-v-dagger")
    assert variant is get_variant("aesmamba-v-b-tad66k") and variant.repo_id == "aesmamba-hf/aesmamba-v-dagger-tad66k"
    assert (variant.task, variant.dataset) == ("V", "TAD66K")
    papers = {name: get_variant(name).score_metadata()[0]["paper_results"]
              for name in ("aesmamba-v-dagger-tad66k", "aesmamba-v-tad66k")}
    assert (papers["aesmamba-v-dagger-tad66k"]["plcc"], papers["aesmamba-v-dagger-tad66k"]["srcc"]) == (0.511, 0.483)
    assert (papers["aesmamba-v-tad66k"]["plcc"], papers["aesmamba-v-tad66k"]["srcc"]) == (0.503, 0.475)
    assert "not reproduced" in papers["aesmamba-v-dagger-tad66k"]["source"]
    shipped = variant_config(variant.name)
    monkeypatch.setenv("AESMAMBA_HUB_CONFIGS", str(tmp_path))  # installed without hub_configs/: the preset
    fallback = variant_config(variant.name)
    for field in ("embed_dim", "depths", "d_state", "ssm_ratio", "dt_rank", "d_conv", "conv_bias"):
        assert getattr(fallback.vision_config, field) == getattr(shipped.vision_config, field), field
    assert fallback.heads == shipped.heads
    monkeypatch.delenv("AESMAMBA_HUB_CONFIGS")

    from aesmamba_hf.training.trainer import build_model

    recipe = load_recipe("v-dagger-tad66k")
    assert (recipe.task, recipe.dataset, recipe.model) == ("V", "TAD66K", "aesmamba-v-dagger-tad66k")
    assert recipe.learning_rate == load_recipe("v-tad66k").learning_rate
    with torch.device("meta"):
        model = build_model(recipe)
    assert paper_parameters(model) == 76_280_966
