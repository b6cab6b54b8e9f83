"""Official checkpoint conversion, checked against the authors' key/shape lists (tests/fixtures/official_keys)."""

from __future__ import annotations

import ast
import re
from collections import OrderedDict
from pathlib import Path
from types import MappingProxyType

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

KEYS_DIR = Path(__file__).parent / "fixtures" / "official_keys"
VARIANTS = {
    "V_AVA": ("V", "AVA"), "V_PH": ("V", "PhotoNet"), "V_PARA": ("V", "PARA"), "V_AADB": ("V", "AADB"),
    "V_TAD": ("V", "TAD66K"), "M_AVA": ("M", "AVA"), "M_PH": ("M", "PhotoNet"), "F_x": ("F", "PARA"),
    "P_x": ("P", "PARA"),
}
# tensors of the released checkpoints: encoder 210; + 12 head (V), 108 heads (F),
# 199 BERT + 14 fusion + 12 head (M), + 72 heads (P)
KEY_COUNTS = {"V": 222, "F": 318, "M": 435, "P": 495}
BERT_BASE_POOLER = 768 * 768 + 768  # the released M/P checkpoints carry it; our models drop it by default
POOLER = ("text_backbone.bert_model.pooler.dense.weight", "text_backbone.bert_model.pooler.dense.bias")


def official_state(name: str) -> dict[str, torch.Tensor]:
    state = {}
    for line in (KEYS_DIR / f"out_{name}.txt").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape, _ = line.split("\t")
        state[key] = torch.empty(ast.literal_eval(shape), device="meta")
    return state


def official_total_params(name: str) -> int:
    header = (KEYS_DIR / f"out_{name}.txt").read_text().splitlines()[0]
    return int(re.search(r"total_params=(\d+)", header).group(1))


def meta_state(config: AesMambaConfig) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return AesMambaForAestheticAssessment(config).state_dict()


def conversion_error(state, config) -> str:
    with pytest.raises(CheckpointConversionError) as err:
        convert_official_state_dict(state, config)
    return str(err.value)


# --------------------------------------------------------------------------------------- key lists


def test_key_list_fixtures_are_complete():
    """The fixtures ship with the repository; each must hold the whole list its header announces."""
    assert sorted(p.stem for p in KEYS_DIR.glob("out_*.txt")) == sorted(f"out_{n}" for n in VARIANTS)
    for name, (task, _) in VARIANTS.items():
        state = official_state(name)
        assert len(state) == KEY_COUNTS[task], name
        assert sum(t.numel() for t in state.values()) == official_total_params(name), name


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_official_key_is_consumed_with_equal_shapes(name):
    task, dataset = VARIANTS[name]
    state = official_state(name)
    config = AesMambaConfig(task=task, dataset=dataset)
    converted = convert_official_state_dict(state, config)
    expected = meta_state(config)
    assert set(converted) == set(expected)
    assert all(tuple(converted[k].shape) == tuple(expected[k].shape) for k in expected)
    # the authors' parameter total, independently of any key mapping: only the unused pooler is dropped
    has_pooler = all(k in state for k in POOLER)
    assert has_pooler == (task in ("M", "P"))
    # the per-user taste directions are ours, and zero: the converted model scores as the authors' does
    taste = converted.pop("taste.weight", None)
    assert taste is None or not taste.any()
    our_total = sum(t.numel() for t in converted.values())
    assert our_total == official_total_params(name) - (BERT_BASE_POOLER if has_pooler else 0)
    if has_pooler:  # with the pooler kept, every single key maps one-to-one
        kept = convert_official_state_dict(state, AesMambaConfig(task=task, dataset=dataset,
                                                                 text_add_pooling_layer=True))
        assert len(kept) == len(state) + (taste is not None)
        assert sum(t.numel() for k, t in kept.items() if k != "taste.weight") == official_total_params(name)


def test_wrong_variant_lists_the_offending_keys():
    message = conversion_error(official_state("V_AVA"), AesMambaConfig(task="V", dataset="PhotoNet"))
    assert "heads.aesthetic.score.fc2.weight: checkpoint (10, 256) vs model (7, 256)" in message
    message = conversion_error(official_state("V_AVA"), AesMambaConfig(task="M", dataset="AVA"))
    assert "missing keys" in message and "aesmamba.fusion.to_kv.weight" in message
    state = official_state("V_AVA")
    state["img_model.surprise.weight"] = torch.empty(1, device="meta")
    assert "img_model.surprise.weight" in conversion_error(state, AesMambaConfig(task="V", dataset="AVA"))


# ------------------------------------------------------------------------------------ BERT pooler

M_AVA = AesMambaConfig(task="M", dataset="AVA")


def test_unused_pooler_with_a_wrong_shape_is_an_error():
    state = official_state("M_AVA")
    state[POOLER[0]] = torch.empty(768, 512, device="meta")
    message = conversion_error(state, M_AVA)
    assert "aesmamba.text_model.pooler.dense.weight: checkpoint (768, 512) vs model (768, 768)" in message
    state = official_state("M_AVA")
    state[POOLER[1]] = torch.empty(769, device="meta")
    assert "pooler.dense.bias: checkpoint (769,) vs model (768,)" in conversion_error(state, M_AVA)


def test_half_a_pooler_or_an_unknown_pooler_key_is_named():
    state = official_state("M_AVA")
    del state[POOLER[1]]
    message = conversion_error(state, M_AVA)
    assert "missing keys (1): aesmamba.text_model.pooler.dense.bias" in message
    state = official_state("M_AVA")
    state["text_backbone.bert_model.pooler.activation.weight"] = torch.empty(768, device="meta")
    message = conversion_error(state, M_AVA)
    assert "unexpected keys (1): aesmamba.text_model.pooler.activation.weight" in message


def test_checkpoint_without_pooler_converts_unless_the_model_keeps_one():
    state = {k: v for k, v in official_state("P_x").items() if k not in POOLER}
    assert set(convert_official_state_dict(state, AesMambaConfig(task="P", dataset="PARA"))) == set(
        meta_state(AesMambaConfig(task="P", dataset="PARA")))
    message = conversion_error(state, AesMambaConfig(task="P", dataset="PARA", text_add_pooling_layer=True))
    assert "missing keys (2): aesmamba.text_model.pooler.dense.bias, aesmamba.text_model.pooler.dense.weight" in (
        message)
    # the pooler is a BERT key: a V checkpoint carrying one has a stray text encoder key
    state = official_state("V_AVA")
    state[POOLER[0]] = torch.empty(768, 768, device="meta")
    assert "unexpected keys (1): aesmamba.text_model.pooler.dense.weight" in conversion_error(
        state, AesMambaConfig(task="V", dataset="AVA"))


# ------------------------------------------------------------------- tiny models in official names


def _vmamba_official_names(state: dict[str, torch.Tensor], new_names: bool) -> dict[str, torch.Tensor]:
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


# our fusion / head module names → the authors' (``adatper`` typo included), written out independently
# of conversion.py
_OFFICIAL_FUSION = {"to_q.": "cross_attention.to_q.", "to_kv.": "cross_attention.to_kv.",
                    "to_out.": "cross_attention.to_out.0.", "norm_image.": "norm_attn_img.",
                    "norm_text.": "norm_attn_text.", "ffn_in.": "ffn.fc1.", "ffn_out.": "ffn.fc2.",
                    "norm_ffn.": "norm_ffn."}
_OFFICIAL_HEAD = {"adapter.down.": "adatper.0.", "adapter.up.": "adatper.2.", "score.fc1.": "heads.0.",
                  "score.fc2.": "heads.2.", "scale_class.fc1.": "classes_heads.0.",
                  "scale_class.fc2.": "classes_heads.2."}


def _swap_prefix(key: str, table: dict[str, str]) -> str:
    prefix = next(p for p in table if key.startswith(p))
    return table[prefix] + key[len(prefix):]


def official_checkpoint(model: AesMambaForAestheticAssessment) -> dict[str, torch.Tensor]:
    """The state dict of ``model`` under the names the authors' training scripts save (a flat dict)."""
    task = model.config.task
    encoder, heads = ("img_model.", "pred_head.") if task in ("V", "M") else ("img_feature.", "multi_attr_pred_head.")
    vision = {k[len("aesmamba.vision_model."):]: v for k, v in model.state_dict().items()
              if k.startswith("aesmamba.vision_model.")}
    out = {encoder + k: v for k, v in _vmamba_official_names(vision, new_names=False).items()}
    for key, value in model.state_dict().items():
        if key.startswith("aesmamba.text_model."):
            out["text_backbone.bert_model." + key[len("aesmamba.text_model."):]] = value
        elif key.startswith("aesmamba.fusion."):
            out["attrInject." + _swap_prefix(key[len("aesmamba.fusion."):], _OFFICIAL_FUSION)] = value
        elif key.startswith("heads."):
            _, attr, rest = key.split(".", 2)
            out[f"{heads}{attr}_head.{_swap_prefix(rest, _OFFICIAL_HEAD)}"] = value
    return out


def _tiny_model(task: str, seed: int, **kwargs) -> AesMambaForAestheticAssessment:
    config = AesMambaConfig.tiny(task=task, **kwargs)
    config.vision_config.scan_backend = "chunked"
    torch.manual_seed(seed)
    return AesMambaForAestheticAssessment(config).eval()


def test_official_task_checkpoint_file_loads_into_model(tmp_path):
    """A flat official-style F checkpoint (tiny sizes) written to disk loads strictly and predicts the same."""
    model = _tiny_model("F", seed=1)
    torch.save(official_checkpoint(model), tmp_path / "f.pth")
    loaded = load_official_checkpoint(tmp_path / "f.pth", model.config)
    loaded.set_scan_backend("chunked")
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(loaded(x).scores, model(x).scores)


@pytest.mark.parametrize("as_mapping", [dict, OrderedDict, MappingProxyType])
def test_official_checkpoint_from_a_state_dict_in_memory(as_mapping):
    model = _tiny_model("F", seed=2)
    loaded = load_official_checkpoint(as_mapping(official_checkpoint(model)), model.config)
    loaded.set_scan_backend("chunked")
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(loaded(x).scores, model(x).scores)


def test_kept_pooler_receives_the_checkpoint_weights(tmp_path):
    """M with text_add_pooling_layer=True: the pooler values arrive, and the text path predicts the same."""
    model = _tiny_model("M", seed=3, text_add_pooling_layer=True)
    state = official_checkpoint(model)
    assert all(k in state for k in POOLER)
    loaded = load_official_checkpoint(state, model.config)
    loaded.set_scan_backend("chunked")
    pooler = loaded.aesmamba.text_model.pooler.dense
    torch.testing.assert_close(pooler.weight, state[POOLER[0]], rtol=0, atol=0)
    torch.testing.assert_close(pooler.bias, state[POOLER[1]], rtol=0, atol=0)
    pixels, ids, mask = torch.randn(2, 3, 32, 32), torch.tensor([[101, 2023, 102], [101, 7, 102]]), torch.ones(2, 3)
    torch.testing.assert_close(loaded(pixels, input_ids=ids, attention_mask=mask).scores,
                               model(pixels, input_ids=ids, attention_mask=mask).scores)
    # the same checkpoint into the default config (no pooler): the pooler is checked, then dropped
    plain = load_official_checkpoint(state, AesMambaConfig.tiny(task="M"))
    assert plain.aesmamba.text_model.pooler is None


def test_wrong_checkpoint_argument_types_are_type_errors():
    config = AesMambaConfig.tiny(task="F")
    for bad in (42, [("x", torch.zeros(1))], b"f.pth"):
        with pytest.raises(TypeError, match="checkpoint path or a state dict"):
            load_official_checkpoint(bad, config)
        with pytest.raises(TypeError, match="checkpoint path or a state dict"):
            load_vmamba_checkpoint(bad)
    with pytest.raises(TypeError, match="not tensors: epoch"):
        load_official_checkpoint({"epoch": 3, **official_checkpoint(_tiny_model("F", seed=0))}, config)


# ------------------------------------------------------------------------------------------ VMamba

VMAMBA_TINY = VMambaConfig(embed_dim=8, depths=[1, 2], d_state=4, scan_backend="chunked")


def _vmamba_release(new_names: bool) -> tuple[VMambaModel, dict]:
    """A tiny VMamba and its weights as VMamba releases them: wrapped, with the ImageNet classifier."""
    torch.manual_seed(0)
    source = VMambaModel(VMAMBA_TINY).eval()
    state = _vmamba_official_names(source.state_dict(), new_names)
    head = "classifier.head." if new_names else "head."
    state[head + "weight"] = torch.randn(1000, 16)
    state[head + "bias"] = torch.randn(1000)
    return source, {"model": state, "epoch": 292}


@pytest.mark.parametrize("new_names", [False, True])
def test_vmamba_checkpoint_round_trip_both_namings(tmp_path, new_names):
    source, release = _vmamba_release(new_names)
    path = tmp_path / "vssm_tiny.pth"
    torch.save(release, path)
    x = torch.randn(1, 3, 16, 16)
    torch.testing.assert_close(load_vmamba_checkpoint(path, VMAMBA_TINY)(x).pooler_output, source(x).pooler_output)
    for checkpoint in (str(path), release, release["model"]):  # path as str, or state dict wrapped or flat
        loaded = load_vmamba_checkpoint(checkpoint, VMAMBA_TINY).state_dict()
        assert set(loaded) == set(source.state_dict())
        assert all(torch.equal(loaded[k], v) for k, v in source.state_dict().items())


def test_vmamba_conversion_names_missing_and_stray_keys():
    _, release = _vmamba_release(new_names=False)
    state = dict(release["model"])
    del state["layers.1.blocks.1.self_attention.Ds"]
    state["layers.0.blocks.0.mlp.fc1.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointConversionError) as err:
        convert_vmamba_state_dict(state, VMAMBA_TINY)
    assert "layers.1.blocks.1.ss2d.Ds" in str(err.value) and "layers.0.blocks.0.mlp.fc1.weight" in str(err.value)


# ------------------------------------------------------------------------------- reading the files


class NotAWeight:
    """An arbitrary pickled object: weights_only loading must refuse it."""


class WritesOnUnpickle:
    """Unpickling this creates ``path``: proof that a loader ran code from the file."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


def test_pickled_objects_are_refused_with_advice_and_never_run(tmp_path):
    torch.save({"model": {"x": NotAWeight()}}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointConversionError) as err:
        load_checkpoint_file(tmp_path / "evil.pth")
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'evil.pth'}: the checkpoint stores pickled Python objects")
    assert "test_conversion.NotAWeight" in message  # what it holds
    assert "re-save" in message and "safetensors" in message  # what to do
    assert "weights_only=False" not in message  # torch's own advice is not passed on
    # the loaders behind the public entry points say the same
    with pytest.raises(CheckpointConversionError, match="evil.pth: the checkpoint stores pickled"):
        load_official_checkpoint(tmp_path / "evil.pth", AesMambaConfig.tiny(task="F"))
    marker = tmp_path / "pwned"
    torch.save({"model": {"x": WritesOnUnpickle(marker)}}, tmp_path / "trap.pth")
    with pytest.raises(CheckpointConversionError, match=r"it contains (io|builtins)\.open"):
        load_vmamba_checkpoint(tmp_path / "trap.pth")
    assert not marker.exists()


def test_resaved_tensors_load_where_the_pickled_file_did_not(tmp_path):
    """The advice of the error works: the same tensors as a plain .pth or .safetensors load."""
    from safetensors.torch import save_file

    source, release = _vmamba_release(new_names=False)
    torch.save({"model": release["model"], "args": NotAWeight()}, tmp_path / "training_checkpoint.pth")
    with pytest.raises(CheckpointConversionError):
        load_vmamba_checkpoint(tmp_path / "training_checkpoint.pth", VMAMBA_TINY)
    torch.save(release["model"], tmp_path / "weights.pth")
    save_file(release["model"], tmp_path / "weights.safetensors")
    x = torch.randn(1, 3, 16, 16)
    for name in ("weights.pth", "weights.safetensors"):
        loaded = load_vmamba_checkpoint(tmp_path / name, VMAMBA_TINY)
        torch.testing.assert_close(loaded(x).pooler_output, source(x).pooler_output)


def test_unreadable_files_name_the_file(tmp_path):
    (tmp_path / "notes.pth").write_text("hello")
    (tmp_path / "junk.pth").write_bytes(b"\xff\xfe\x00junk")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 16)
    for name in ("notes.pth", "junk.pth", "junk.safetensors"):
        with pytest.raises(CheckpointConversionError) as err:
            load_checkpoint_file(tmp_path / name)
        assert str(tmp_path / name) in str(err.value) and "weights_only=False" not in str(err.value)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_checkpoint_file(tmp_path / "missing.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(CheckpointConversionError, match="expected a state dict, got list"):
        load_checkpoint_file(tmp_path / "list.pth")

