"""Official checkpoint conversion, checked against the authors' key/shape lists (tests/fixtures/official_keys)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from aesmamba_hf import AesMambaConfig, AesMambaForAestheticAssessment, VMambaConfig, VMambaModel
from aesmamba_hf.conversion import (
    CheckpointConversionError,
    convert_official_state_dict,
    convert_vmamba_state_dict,
    load_checkpoint_file,
    load_official_checkpoint,
    load_vmamba_checkpoint,
)

KEYS_DIR = Path(__file__).parent / "fixtures" / "official_keys"  # shipped with the repository: never skipped
VARIANTS = {
    "V_AVA": ("V", "AVA"), "V_PH": ("V", "PhotoNet"), "V_PARA": ("V", "PARA"), "V_AADB": ("V", "AADB"),
    "V_TAD": ("V", "TAD66K"), "M_AVA": ("M", "AVA"), "M_PH": ("M", "PhotoNet"), "F_x": ("F", "PARA"),
    "P_x": ("P", "PARA"),
}

def official_state(name: str) -> dict[str, torch.Tensor]:
    state = {}
    for line in (KEYS_DIR / f"out_{name}.txt").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape, _ = line.split("\t")
        state[key] = torch.empty(ast.literal_eval(shape), device="meta")
    return state


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_official_key_is_consumed_with_equal_shapes(name):
    task, dataset = VARIANTS[name]
    state = official_state(name)
    config = AesMambaConfig(task=task, dataset=dataset)
    converted = convert_official_state_dict(state, config)
    with torch.device("meta"):
        expected = AesMambaForAestheticAssessment(config).state_dict()
    assert set(converted) == set(expected)
    assert all(tuple(converted[k].shape) == tuple(expected[k].shape) for k in expected)
    pooler = [k for k in state if ".pooler." in k]
    assert len(converted) == len(state) - len(pooler)
    # with the pooler kept, every single key maps one-to-one
    if pooler:
        kept = convert_official_state_dict(state, AesMambaConfig(task=task, dataset=dataset, text_add_pooling_layer=True))
        assert len(kept) == len(state)


def test_wrong_variant_lists_the_offending_keys():
    with pytest.raises(CheckpointConversionError) as err:
        convert_official_state_dict(official_state("V_AVA"), AesMambaConfig(task="V", dataset="PhotoNet"))
    assert "heads.aesthetic.score.fc2.weight: checkpoint (10, 256) vs model (7, 256)" in str(err.value)
    with pytest.raises(CheckpointConversionError, match="missing keys"):
        convert_official_state_dict(official_state("V_AVA"), AesMambaConfig(task="M", dataset="AVA"))
    state = official_state("V_AVA")
    state["img_model.surprise.weight"] = torch.empty(1, device="meta")
    with pytest.raises(CheckpointConversionError, match="img_model.surprise.weight"):
        convert_official_state_dict(state, AesMambaConfig(task="V", dataset="AVA"))


def _official_names(state: dict[str, torch.Tensor], new_names: bool) -> dict[str, torch.Tensor]:
    """Our VMamba state dict renamed to the authors' v0 names (or VMamba's newer names)."""
    out = {}
    for key, value in state.items():
        key = key.replace(".ss2d.", ".op." if new_names else ".self_attention.")
        key = key.replace(".norm.", ".norm." if new_names else ".ln_1.") if ".blocks." in key and ".ss2d" not in key else key
        if new_names:
            key = key.replace("patch_embed.proj.", "patch_embed.0.").replace("patch_embed.norm.", "patch_embed.2.")
            key = "classifier.norm." + key[len("norm."):] if key.startswith("norm.") else key
        out[key] = value
    return out


@pytest.mark.parametrize("new_names", [False, True])
def test_vmamba_checkpoint_round_trip_both_namings(tmp_path, new_names):
    config = VMambaConfig(embed_dim=8, depths=[1, 2], d_state=4, scan_backend="chunked")
    torch.manual_seed(0)
    source = VMambaModel(config).eval()
    state = _official_names(source.state_dict(), new_names)
    head = "classifier.head." if new_names else "head."
    state[head + "weight"] = torch.randn(1000, 16)
    state[head + "bias"] = torch.randn(1000)
    path = tmp_path / "vssm_tiny.pth"
    torch.save({"model": state, "epoch": 292}, path)  # wrapped, as VMamba releases them
    loaded = load_vmamba_checkpoint(path, config)
    x = torch.randn(1, 3, 16, 16)
    torch.testing.assert_close(loaded(x).pooler_output, source(x).pooler_output)
    assert len(convert_vmamba_state_dict(state, config)) == len(source.state_dict())


def test_official_task_checkpoint_file_loads_into_model(tmp_path):
    """A flat official-style V checkpoint (tiny sizes) written to disk loads strictly and predicts the same."""
    config = AesMambaConfig.tiny(task="F")
    config.vision_config.scan_backend = "chunked"
    torch.manual_seed(1)
    model = AesMambaForAestheticAssessment(config).eval()
    inverse = {}
    for key, value in model.state_dict().items():
        if key.startswith("aesmamba.vision_model."):
            sub = key[len("aesmamba.vision_model."):].replace(".ss2d.", ".self_attention.")
            if ".blocks." in sub and ".norm." in sub and "self_attention" not in sub:
                sub = sub.replace(".norm.", ".ln_1.")
            inverse["img_feature." + sub] = value
        else:
            _, attr, rest = key.split(".", 2)
            rest = (rest.replace("adapter.down.", "adatper.0.").replace("adapter.up.", "adatper.2.")
                    .replace("score.fc1.", "heads.0.").replace("score.fc2.", "heads.2.")
                    .replace("scale_class.fc1.", "classes_heads.0.").replace("scale_class.fc2.", "classes_heads.2."))
            inverse[f"multi_attr_pred_head.{attr}_head.{rest}"] = value
    torch.save(inverse, tmp_path / "f.pth")
    loaded = load_official_checkpoint(tmp_path / "f.pth", config)
    loaded.set_scan_backend("chunked")
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(loaded(x).scores, model(x).scores)


class NotAWeight:
    """An arbitrary pickled object: weights_only loading must refuse it."""


def test_checkpoint_loading_is_weights_only(tmp_path):
    torch.save({"model": {"x": NotAWeight()}}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointConversionError, match="evil.pth"):
        load_checkpoint_file(tmp_path / "evil.pth")
