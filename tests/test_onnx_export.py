"""ONNX export: the graph runs in onnxruntime with torch's scores at any batch size; bad inputs are refused."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from _io_helpers import random_image, save_tiny_model
from aesmamba_hf import AesMambaConfig, AesMambaForAestheticAssessment
from aesmamba_hf.hub import ExportError, export_onnx
from aesmamba_hf.selective_scan import cross_selective_scan

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

os.environ.setdefault("OMP_NUM_THREADS", "1")


SIZE = 64  # the graph's fixed spatial size comes from the processor; small keeps the traced graph small


def _small_processor(config):
    from aesmamba_hf.inference.loading import default_processor_for_config

    processor = default_processor_for_config(config)
    processor.image_processor.size = {"height": SIZE, "width": SIZE}
    return processor


def _session(folder):
    return ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])


def _torch_outputs(model, pixels):
    with torch.no_grad():
        return model(pixel_values=pixels)


@pytest.fixture(scope="module")
def exported_v(tmp_path_factory):
    """A tiny V model (distribution head) saved with the fused scan backend, and its ONNX export."""
    root = tmp_path_factory.mktemp("onnx_v")
    folder = save_tiny_model(root / "model", task="V")
    model = AesMambaForAestheticAssessment.from_pretrained(folder).eval()
    _small_processor(model.config).save_pretrained(folder)
    model.set_scan_backend("auto")  # compare with what torch users run, not the test's reference pin
    result = export_onnx(folder, root / "onnx")
    return model, result


def test_onnx_v_matches_torch_at_batch_1_and_3(exported_v):
    model, result = exported_v
    session = _session(result.path)
    assert [i.name for i in session.get_inputs()] == ["pixel_values"]
    assert session.get_inputs()[0].shape[0] not in (1, 2, 3)  # a named, dynamic batch axis
    names = [o.name for o in session.get_outputs()]
    assert names[:2] == ["scores", "distribution"] and set(names) <= {"scores", "distribution", "class_logits"}
    generator = torch.Generator().manual_seed(1)
    for batch in (1, 3):
        pixels = torch.randn(batch, 3, SIZE, SIZE, generator=generator)
        got = dict(zip(names, session.run(None, {"pixel_values": pixels.numpy()})))
        expected = _torch_outputs(model, pixels)
        assert got["scores"].shape == (batch, 1) and got["distribution"].shape == (batch, 10)
        for name in names:
            np.testing.assert_allclose(got[name], getattr(expected, name).numpy(), atol=1e-4, rtol=0)
    assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-4


def test_onnx_folder_has_processor_config_and_note(exported_v):
    from aesmamba_hf import AesMambaProcessor

    _, result = exported_v
    assert {"model.onnx", "config.json", "processor_config.json", "onnx_export.json", "README.md"} <= set(result.files)
    note = json.loads((result.path / "onnx_export.json").read_text())
    assert note["inputs"]["pixel_values"] == ["batch", 3, SIZE, SIZE]
    assert list(note["outputs"])[:2] == ["scores", "distribution"] and note["outputs"]["distribution"] == ["batch", 10]
    assert [h["name"] for h in note["heads"]] == ["aesthetic"] and note["scan"] == "unrolled"
    assert note["trained"] is True  # a model the user built is not marked as random
    # the saved processor gives the graph its input: a real image scores like the torch model
    processor = AesMambaProcessor.from_pretrained(result.path)
    pixels = processor(images=[random_image(3)], return_tensors="pt")["pixel_values"]
    model, _ = exported_v
    scores = _session(result.path).run(["scores"], {"pixel_values": pixels.numpy()})[0]
    np.testing.assert_allclose(scores, _torch_outputs(model, pixels).scores.numpy(), atol=1e-4, rtol=0)


def test_onnx_f_model_outputs_nine_attributes(tmp_path):
    torch.manual_seed(0)
    model = AesMambaForAestheticAssessment(AesMambaConfig.tiny(task="F")).eval()
    before = model.get_scan_backend()
    result = export_onnx(model, tmp_path / "onnx", processor=_small_processor(model.config))
    assert model.get_scan_backend() == before  # the caller's model is left as it was
    session = _session(result.path)
    assert [o.name for o in session.get_outputs()][0] == "scores"
    pixels = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"pixel_values": pixels.numpy()})))
    expected = _torch_outputs(model, pixels)
    assert got["scores"].shape == (3, 9)
    np.testing.assert_allclose(got["scores"], expected.scores.numpy(), atol=1e-4, rtol=0)
    if expected.class_logits is not None:
        np.testing.assert_allclose(got["class_logits"], expected.class_logits.numpy(), atol=1e-4, rtol=0)


def test_unrolled_scan_equals_reference_on_odd_map():
    """The ONNX formulation (chunks of ⌈√L⌉ steps, padded) against the sequential reference."""
    torch.manual_seed(0)
    d, n, r, k = 8, 4, 2, 4
    x = torch.randn(2, 5, 7, d)  # L = 35: chunks of 6, padded to 36
    params = (torch.randn(k, r + 2 * n, d) * 0.5, torch.randn(k, d, r) * 0.5, torch.randn(k, d),
              torch.log(torch.arange(1, n + 1).float()).repeat(k * d, 1), torch.randn(k * d))
    expected = cross_selective_scan(x.double(), *(p.double() for p in params), backend="reference")
    got = cross_selective_scan(x, *params, backend="unrolled")
    assert got.dtype == torch.float32 and got.shape == x.shape
    torch.testing.assert_close(got.double(), expected.double(), rtol=1e-5, atol=1e-5)


def test_onnx_export_refuses_text_tasks(tmp_path):
    model = AesMambaForAestheticAssessment(AesMambaConfig.tiny(task="M")).eval()
    with pytest.raises(ExportError, match="task-M model.*BERT"):
        export_onnx(model, tmp_path / "onnx")
    assert not (tmp_path / "onnx").exists()


def test_onnx_export_refuses_non_empty_dir_random_weights_and_bad_scan(tmp_path):
    model = AesMambaForAestheticAssessment(AesMambaConfig.tiny(task="V")).eval()
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty"):
        export_onnx(model, taken)
    assert (taken / "keep.txt").read_text() == "mine"
    model.config.random_weights = True
    with pytest.raises(ExportError, match="RANDOM weights"):
        export_onnx(model, tmp_path / "random")
    with pytest.raises(ExportError, match="scan must be one of"):
        export_onnx(model, tmp_path / "bad", scan="fused", allow_random=True)
    with pytest.raises(ExportError, match="neither a checkpoint folder nor a known variant"):
        export_onnx(tmp_path / "missing", tmp_path / "out")
    assert not (tmp_path / "random").exists() and not (tmp_path / "out").exists()


def test_cli_export_format_onnx(tmp_path, capsys):
    from aesmamba_hf.cli import main

    folder = save_tiny_model(tmp_path / "model", task="V")
    _small_processor(AesMambaForAestheticAssessment.config_class.from_pretrained(folder)).save_pretrained(folder)
    assert main(["export", "--format", "onnx", str(folder), str(tmp_path / "onnx")]) == 0
    assert (tmp_path / "onnx" / "model.onnx").is_file()
    assert "model.onnx" in capsys.readouterr().out
    assert main(["export", "--format", "onnx", str(folder), str(tmp_path / "onnx")]) == 1  # not empty
    assert "not empty" in capsys.readouterr().err
    assert main(["export", "--format", "onnx", "--metrics", "m.json", str(folder), str(tmp_path / "o2")]) == 1
    assert "--metrics" in capsys.readouterr().err
