"""AesMamba heads, integration, losses, and the transformers round trips."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel

from _io_helpers import paper_parameters
from aesmamba_hf import AesMambaConfig, AesMambaForAestheticAssessment, AesMambaModel
from aesmamba_hf.losses import balanced_softmax_loss, bce_as_released, emd_loss, scalar_mse

HUB_CONFIGS = os.path.join(os.path.dirname(__file__), "..", "hub_configs")
OFFICIAL_COUNTS = {  # the released models'; M and P without BERT's unused pooler (590,592 parameters)
    "aesmamba-v-ava": 22_818_417,
    "aesmamba-v-photonet": 22_816_875,
    "aesmamba-v-para": 22_815_333,
    "aesmamba-v-aadb": 22_815_590,
    "aesmamba-v-tad66k": 22_815_590,
    "aesmamba-f-para": 28_342_413,
    "aesmamba-m-ava": 139_387_761 - 590_592,
    "aesmamba-m-photonet": 139_386_219 - 590_592,
    "aesmamba-p-para": 143_130_729 - 590_592,
}


def tiny_model(task: str, seed: int = 0, **kw) -> AesMambaForAestheticAssessment:
    torch.manual_seed(seed)
    config = AesMambaConfig.tiny(task=task, **kw)
    config.vision_config.scan_backend = "chunked"
    return AesMambaForAestheticAssessment(config).eval()


def text_batch(lengths, seed=0, length=9):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 30000, (len(lengths), length), generator=gen)
    mask = torch.zeros(len(lengths), length, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
        ids[i, n:] = 0  # [PAD]
    return ids, mask


@pytest.mark.parametrize("name", sorted(OFFICIAL_COUNTS))
def test_hub_config_parameter_counts_equal_official(name):
    config = AutoConfig.from_pretrained(os.path.join(HUB_CONFIGS, name))
    assert config.variant == name
    with torch.device("meta"):
        model = AesMambaForAestheticAssessment(config)
    assert paper_parameters(model) == OFFICIAL_COUNTS[name]


def test_pooler_switch_gives_the_released_count():
    config = AesMambaConfig(task="P", dataset="PARA", text_add_pooling_layer=True)
    with torch.device("meta"):
        model = AesMambaForAestheticAssessment(config)
    assert paper_parameters(model) == 143_130_729


@pytest.mark.parametrize("task", ["V", "M", "F", "P"])
def test_output_shapes_and_expected_score(task):
    model = tiny_model(task)
    pixels = torch.randn(3, 3, 32, 32)
    kw = {}
    if task in ("M", "P"):
        kw["input_ids"], kw["attention_mask"] = text_batch([9, 5, 3])
    out = model(pixels, **kw)
    n_heads = 1 if task in ("V", "M") else 9
    assert out.scores.shape == (3, n_heads)
    assert out.integrated_features.shape == (3, 16)
    if task in ("V", "M"):
        assert out.distribution.shape == (3, 10)
        torch.testing.assert_close(out.distribution.sum(-1), torch.ones(3))
        torch.testing.assert_close(out.scores[:, 0], out.distribution @ torch.arange(1.0, 11.0))
        assert out.class_logits.shape == (3, 1, 7)
    elif task == "F":
        assert out.distribution is None and out.class_logits.shape == (3, 9, 4)
    else:
        assert out.distribution is None and out.class_logits is None


def test_modal_adaptive_integration_is_decided_at_run_time():
    model = tiny_model("M")
    pixels = torch.randn(2, 3, 32, 32)
    ids, mask = text_batch([9, 4])
    base = model.aesmamba(pixels)
    fused = model.aesmamba(pixels, input_ids=ids, attention_mask=mask)
    torch.testing.assert_close(base.integrated_features, base.image_features)
    assert not torch.allclose(fused.integrated_features, fused.image_features)
    with pytest.raises(ValueError, match="no text encoder"):
        tiny_model("V")(pixels, input_ids=ids)


@pytest.mark.parametrize("task", ["M", "P"])
def test_text_padding_masked_makes_predictions_batch_invariant(task):
    model = tiny_model(task)
    pixels = torch.randn(2, 3, 32, 32)
    ids, mask = text_batch([4, 9])
    alone = model(pixels[:1], input_ids=ids[:1, :4], attention_mask=mask[:1, :4]).scores
    batched = model(pixels, input_ids=ids, attention_mask=mask).scores[:1]
    torch.testing.assert_close(batched, alone, rtol=1e-5, atol=1e-6)

    # the released behaviour attends to [PAD]: the feature then depends on the batch's padded length
    released = tiny_model(task, mask_text_padding=False)
    alone = released(pixels[:1], input_ids=ids[:1, :4], attention_mask=mask[:1, :4]).integrated_features
    batched = released(pixels, input_ids=ids, attention_mask=mask).integrated_features[:1]
    assert (batched - alone).abs().max() > 1e-4


def test_distribution_loss_matches_spec_formula():
    model = tiny_model("V")
    pixels = torch.randn(4, 3, 32, 32)
    votes = torch.tensor([[0, 1, 3, 10, 20, 8, 2, 1, 0, 0]] * 2 + [[1, 0, 0, 0, 2, 5, 9, 6, 3, 1]] * 2).float()
    out = model(pixels, labels=votes)
    target = votes / votes.sum(1, keepdim=True)
    p = out.distribution
    mse = ((p - target) ** 2).mean()
    emd = torch.sqrt(((p.cumsum(1) - target.cumsum(1)) ** 2).mean(1)).mean()
    classes = torch.clamp(torch.floor(target @ torch.arange(1.0, 11.0) - 1), 0, 6).long()
    counts = torch.tensor(model.config.heads[0]["class_counts"], dtype=torch.float32)
    ce = F.cross_entropy(out.class_logits[:, 0] + torch.log(counts / counts.sum()), classes)
    torch.testing.assert_close(out.loss, 10 * mse + emd + 0.001 * ce, rtol=1e-5, atol=1e-6)


def test_scalar_loss_no_broadcast_and_released_switch():
    model = tiny_model("V", dataset="PARA")
    pixels = torch.randn(4, 3, 32, 32)
    y = torch.tensor([1.5, 2.5, 3.5, 4.5])
    out = model(pixels, labels=y)
    pred = out.scores[:, 0]
    classes = torch.tensor([0, 1, 2, 3])
    counts = torch.tensor(model.config.heads[0]["class_counts"], dtype=torch.float32)
    ce = F.cross_entropy(out.class_logits[:, 0] + torch.log(counts / counts.sum()), classes)
    torch.testing.assert_close(out.loss, F.mse_loss(pred, y) + 0.001 * ce)

    released = tiny_model("V", dataset="PARA", mse_as_released=True, classification_loss="bce_as_released")
    out_r = released(pixels, labels=y)
    broadcast = ((out_r.scores[:, 0][:, None] - y[None, :]) ** 2).mean()
    bce = F.binary_cross_entropy_with_logits(out_r.class_logits[:, 0], F.one_hot(classes, 4).float(), reduction="sum") / 4
    torch.testing.assert_close(out_r.loss, broadcast + 0.001 * bce)


def test_multi_attribute_loss_sums_heads_and_accepts_class_labels():
    model = tiny_model("F")
    pixels = torch.randn(2, 3, 32, 32)
    y = torch.rand(2, 9) * 4 + 1
    cls = torch.randint(0, 4, (2, 9))
    out = model(pixels, labels=y, class_labels=cls)
    mse = sum(F.mse_loss(out.scores[:, i], y[:, i]) for i in range(9))
    ce = sum(
        balanced_softmax_loss(out.class_logits[:, i], cls[:, i], model.config.heads[i]["class_counts"])
        for i in range(9)
    )
    torch.testing.assert_close(out.loss, mse + 0.001 * ce)
    with pytest.raises(ValueError, match=r"\(batch, 9\)"):
        model(pixels, labels=torch.rand(2, 3))


def test_loss_helpers():
    p = torch.tensor([[0.2, 0.3, 0.5]])
    q = torch.tensor([[0.5, 0.3, 0.2]])
    assert emd_loss(p, q, r=1).item() == pytest.approx((0.3 + 0.3 + 0.0) / 3)
    assert emd_loss(p, p, r=2).item() == pytest.approx(0.0, abs=1e-5)
    assert scalar_mse(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 4.0])).item() == pytest.approx(2.0)
    logits = torch.zeros(1, 4)
    assert bce_as_released(logits, torch.tensor([2])).item() == pytest.approx(4 * torch.log(torch.tensor(2.0)).item())
    # a rare class gets a larger loss under the balanced prior than under plain CE
    rare = balanced_softmax_loss(logits, torch.tensor([0]), [1, 100, 100, 100])
    assert rare.item() > F.cross_entropy(logits, torch.tensor([0])).item()


def test_invalid_configs_are_rejected():
    with pytest.raises(ValueError, match="task"):
        AesMambaConfig(task="X")
    with pytest.raises(ValueError, match="classification_loss"):
        AesMambaConfig(classification_loss="focal")
    with pytest.raises(ValueError, match="only head"):
        AesMambaConfig(heads=[AesMambaConfig().heads[0], dict(AesMambaConfig().heads[0], name="b")])
    with pytest.raises(ValueError, match="class_counts"):
        AesMambaConfig(heads=[dict(AesMambaConfig().heads[0], class_counts=[1, 2])])


def test_automodel_resolves_architecture(tmp_path):
    model = tiny_model("F")
    model.save_pretrained(tmp_path / "head")
    assert type(AutoModel.from_pretrained(tmp_path / "head")) is AesMambaForAestheticAssessment
    base = AesMambaModel(model.config)
    base.save_pretrained(tmp_path / "base")
    assert type(AutoModel.from_pretrained(tmp_path / "base")) is AesMambaModel


def _run_fresh(code: str, cwd, hide_package: bool) -> dict:
    prelude = ""
    if hide_package:  # simulate a machine without aesmamba_hf installed
        prelude = textwrap.dedent(
            """
            import sys, importlib.abc
            class _Block(importlib.abc.MetaPathFinder):
                def find_spec(self, name, path=None, target=None):
                    if name == "aesmamba_hf" or name.startswith("aesmamba_hf."):
                        raise ModuleNotFoundError(name)
            sys.meta_path.insert(0, _Block())
            """
        )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(cwd / "modules_cache"), OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-c", prelude + code], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("task", ["V", "P"])
def test_save_then_load_in_fresh_process_and_remote_code(tmp_path, task):
    model = tiny_model(task, seed=5)
    model.save_pretrained(tmp_path / "ckpt")
    saved = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert saved["auto_map"]["AutoModel"].endswith("modeling_aesmamba.AesMambaForAestheticAssessment")
    assert (tmp_path / "ckpt" / "model.safetensors").exists()
    torch.manual_seed(7)
    pixels = torch.randn(2, 3, 32, 32)
    torch.save(pixels, tmp_path / "pixels.pt")
    kw, kw_src = {}, ""
    if task == "P":
        ids, mask = text_batch([9, 6])
        torch.save((ids, mask), tmp_path / "text.pt")
        kw = dict(input_ids=ids, attention_mask=mask)
        kw_src = "ids, mask = torch.load('text.pt'); kw = dict(input_ids=ids, attention_mask=mask)"
    expected = model(pixels, **kw).scores.tolist()
    code = textwrap.dedent(
        f"""
        import json, torch
        from transformers import AutoModel
        {{import_line}}
        kw = {{{{}}}}
        {kw_src}
        model = AutoModel.from_pretrained('ckpt', {{flag}})
        model.set_scan_backend('chunked')
        out = model(torch.load('pixels.pt'), **kw).scores.tolist()
        print(json.dumps({{{{"cls": type(model).__module__, "scores": out}}}}))
        """
    )
    local = _run_fresh(code.format(import_line="import aesmamba_hf", flag=""), tmp_path, hide_package=False)
    assert local["cls"] == "aesmamba_hf.modeling_aesmamba"
    torch.testing.assert_close(torch.tensor(local["scores"]), torch.tensor(expected), rtol=1e-5, atol=1e-6)
    remote = _run_fresh(code.format(import_line="", flag="trust_remote_code=True"), tmp_path, hide_package=True)
    assert remote["cls"].startswith("transformers_modules")
    torch.testing.assert_close(torch.tensor(remote["scores"]), torch.tensor(expected), rtol=1e-5, atol=1e-6)


def test_import_works_without_mamba_ssm():
    code = "import sys; sys.modules['mamba_ssm'] = None; import aesmamba_hf.selective_scan as s; print(s.MAMBA_SSM_AVAILABLE)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_mask_text_padding_is_read_at_call_time(tmp_path):
    model = tiny_model("M")
    model.save_pretrained(tmp_path)
    loaded = AesMambaForAestheticAssessment.from_pretrained(tmp_path)
    loaded.set_scan_backend("chunked")
    pixels = torch.randn(1, 3, 32, 32)
    ids, mask = text_batch([4])
    masked = loaded(pixels, input_ids=ids, attention_mask=mask).scores
    loaded.config.mask_text_padding = False  # on the loaded model, after building: honoured at the next call
    unmasked = loaded(pixels, input_ids=ids, attention_mask=mask).scores
    assert (masked - unmasked).abs().max() > 1e-5
    torch.testing.assert_close(unmasked, tiny_model("M", mask_text_padding=False)(
        pixels, input_ids=ids, attention_mask=mask).scores)


def test_set_scan_backend_leaves_the_saved_config_alone(tmp_path):
    model = tiny_model("V")
    model.set_scan_backend("reference")
    assert model.get_scan_backend() == "reference"
    assert model.aesmamba.vision_model.layers[0].blocks[0].ss2d.scan_backend == "reference"
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["vision_config"]["scan_backend"] == "chunked" == model.config.vision_config.scan_backend


@pytest.mark.parametrize("task", ["V", "M"])
def test_outputs_follow_arguments_and_config(task):
    model = tiny_model(task)
    pixels = torch.randn(2, 3, 32, 32)
    kw = {}
    if task == "M":
        kw["input_ids"], kw["attention_mask"] = text_batch([9, 4])
    out = model(pixels, **kw, output_hidden_states=True)
    # VMamba maps, channels-last: the patch embedding, then each stage after its patch merging
    assert [tuple(h.shape) for h in out.hidden_states] == [(2, 8, 8, 8), (2, 4, 4, 16), (2, 4, 4, 16)]
    assert out.attentions is None and out.cross_attentions is None
    if task == "M":
        assert len(out.text_hidden_states) == 2 and out.text_hidden_states[0].shape == (2, 9, 16)
    else:
        assert out.text_hidden_states is None

    as_tuple = model(pixels, **kw, labels=torch.rand(2, 10), return_dict=False)
    # standard order, None fields left out: loss, scores, distribution, class_logits, integrated_features
    assert len(as_tuple) == 5 and as_tuple[0].dim() == 0 and as_tuple[1].shape == (2, 1)
    model.config.return_dict = False
    model.config.output_hidden_states = True
    from_config = model(pixels, **kw)
    assert isinstance(from_config, tuple) and len(from_config) == (6 if task == "M" else 5)
    torch.testing.assert_close(from_config[0], out.scores)


def test_attentions_are_berts_and_cross_attentions_the_fusions():
    config = AesMambaConfig.tiny(task="P")
    config.vision_config.scan_backend = "chunked"
    torch.manual_seed(0)
    model = AesMambaForAestheticAssessment._from_config(config, attn_implementation="eager").eval()
    pixels = torch.randn(2, 3, 32, 32)
    ids, mask = text_batch([9, 4])
    out = model(pixels, input_ids=ids, attention_mask=mask, output_attentions=True)
    (self_attention,) = out.attentions  # one BERT layer
    assert self_attention.shape == (2, 2, 9, 9)
    (weights,) = out.cross_attentions
    assert weights.shape == (2, config.fusion_num_heads, 1, 9)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, config.fusion_num_heads, 1))
    assert weights[1, :, :, 4:].abs().max() == 0  # padded tokens get no weight
    # the weights are the ones the fusion applies: recombining them reproduces its attended values
    fusion = model.aesmamba.fusion
    base = model.aesmamba(pixels, input_ids=ids, attention_mask=mask)
    text = fusion.to_kv(fusion.norm_text(base.text_last_hidden_state)).chunk(2, dim=-1)[1]
    values = text.view(2, 9, config.fusion_num_heads, -1).transpose(1, 2)
    attended = (weights @ values).reshape(2, -1)
    features = base.image_features + fusion.to_out(attended)
    features = features + fusion.ffn_out(F.gelu(fusion.ffn_in(fusion.norm_ffn(features))))
    torch.testing.assert_close(features, base.integrated_features, rtol=1e-5, atol=1e-6)
    # output_attentions changes nothing else
    torch.testing.assert_close(out.scores, model(pixels, input_ids=ids, attention_mask=mask).scores)


def test_sdpa_is_accepted_and_reaches_bert(tmp_path):
    model = tiny_model("M")
    model.save_pretrained(tmp_path)
    loaded = AesMambaForAestheticAssessment.from_pretrained(tmp_path, attn_implementation="sdpa")
    assert loaded.config._attn_implementation == "sdpa"
    assert loaded.aesmamba.text_model.config._attn_implementation == "sdpa"
    eager = AesMambaForAestheticAssessment.from_pretrained(tmp_path, attn_implementation="eager")
    assert eager.aesmamba.text_model.config._attn_implementation == "eager"
    for m in (loaded, eager):
        m.set_scan_backend("chunked")
    pixels = torch.randn(2, 3, 32, 32)
    ids, mask = text_batch([9, 4])
    torch.testing.assert_close(loaded(pixels, input_ids=ids, attention_mask=mask).scores,
                               eager(pixels, input_ids=ids, attention_mask=mask).scores, rtol=1e-5, atol=1e-6)


def test_input_embeddings_are_berts_word_embeddings():
    model = tiny_model("P")
    words = model.aesmamba.text_model.embeddings.word_embeddings
    assert model.get_input_embeddings() is words and model.aesmamba.get_input_embeddings() is words
    model.resize_token_embeddings(30530)
    assert model.config.text_config.vocab_size == 30530
    assert model.get_input_embeddings().weight.shape == (30530, 16)
    ids = torch.full((1, 5), 30529)
    assert model(torch.randn(1, 3, 32, 32), input_ids=ids).scores.shape == (1, 9)

    image_only = tiny_model("F")
    with pytest.raises(NotImplementedError, match="no text encoder"):
        image_only.get_input_embeddings()
    image_only.requires_grad_(False)
    image_only.enable_input_require_grads()  # finds VMamba's patch embedding
    assert image_only(torch.randn(1, 3, 32, 32)).scores.requires_grad


def test_config_task_type_and_random_weights(tmp_path):
    from aesmamba_hf.tasks import Task

    config = AesMambaConfig.tiny(task="m")
    assert config.task == "M" and config.task_type is Task.MULTIMODAL and config.task_type.uses_text
    assert AesMambaConfig(task=Task.FINE_GRAINED, dataset="PARA").task == "F"
    assert config.random_weights is False
    config.random_weights = True
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["task"] == "M" and saved["random_weights"] is True
    assert AesMambaConfig.from_pretrained(tmp_path).random_weights is True
