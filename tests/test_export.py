"""``aesmamba export`` / ``publish``: self-contained Hub folders, remote code without the package, model card."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from _io_helpers import bert_tokenizer
from aesmamba_hf import AesMambaConfig, AesMambaForAestheticAssessment

os.environ.setdefault("OMP_NUM_THREADS", "1")

USER = {"personality-O": 7, "personality-C": 6, "personality-E": 4, "personality-A": 6, "personality-N": 3,
        "artExperience": "proficient", "photographyExperience": "beginner"}

# Runs in a fresh interpreter where every aesmamba_hf import fails: only the exported files can be used.
REMOTE_SCRIPT = r"""
import importlib.abc, json, sys

class BlockPackage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "aesmamba_hf" or name.startswith("aesmamba_hf."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None

sys.meta_path.insert(0, BlockPackage())
try:
    import aesmamba_hf  # noqa: F401
    raise SystemExit("the block did not work")
except ModuleNotFoundError:
    pass

import torch
from transformers import AutoModel, AutoProcessor

folder, image, user = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
inputs = processor(images=[image], users=[user], return_tensors="pt")
with torch.no_grad():
    scores = model(**inputs).scores
print(json.dumps({
    "model_module": type(model).__module__, "processor_module": type(processor).__module__,
    "loaded": sorted(m for m in sys.modules if m.startswith("aesmamba_hf")),
    "scores": scores.tolist(), "input_ids": inputs["input_ids"].tolist(),
    "pixel_sum": float(inputs["pixel_values"].double().sum()),
}))
"""


def tiny_p_model() -> AesMambaForAestheticAssessment:
    torch.manual_seed(0)
    config = AesMambaConfig.tiny("P", variant="aesmamba-p-para")
    config.vision_config.scan_backend = "chunked"
    model = AesMambaForAestheticAssessment(config).eval()
    with torch.no_grad():  # move off the near-zero init so the outputs differ per image and user
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return model


def front_matter(readme: str) -> dict:
    assert readme.startswith("---\n")
    return yaml.safe_load(readme.split("---\n", 2)[1])


@pytest.fixture(scope="module")
def exported_p(tmp_path_factory):
    from aesmamba_hf.hub import export_model
    from aesmamba_hf.pipeline import default_processor_for_config

    base = tmp_path_factory.mktemp("export")
    model = tiny_p_model()
    processor = default_processor_for_config(model.config, tokenizer=bert_tokenizer())
    metrics = {"dataset": "PARA", "split": "test", "num_images": 3000,
               "heads": {"aesthetic": {"plcc": 0.91, "srcc": 0.9, "acc": 0.8}}}
    result = export_model(model, base / "aesmamba-p-para", processor=processor, metrics=metrics,
                          repo_id="someone/aesmamba-p-test")
    return base, model, processor, result


def test_export_writes_a_complete_folder(exported_p):
    _, _, _, result = exported_p
    files = set(result.files)
    for name in ("config.json", "model.safetensors", "README.md", "processor_config.json", "tokenizer.json",
                 "tokenizer_config.json", "modeling_aesmamba.py", "configuration_aesmamba.py", "modeling_vmamba.py",
                 "configuration_vmamba.py", "selective_scan.py", "selective_scan_cpu.py", "dataset_specs.py",
                 "losses.py", "processing_aesmamba.py", "image_processing_aesmamba.py", "prompts.py"):
        assert name in files, name
    config = json.loads((result.path / "config.json").read_text())
    assert config["auto_map"] == {"AutoConfig": "configuration_aesmamba.AesMambaConfig",
                                  "AutoModel": "modeling_aesmamba.AesMambaForAestheticAssessment"}
    assert config["random_weights"] is False and "untrained" not in config and result.trained
    processor_config = json.loads((result.path / "processor_config.json").read_text())
    assert processor_config["auto_map"]["AutoProcessor"] == "processing_aesmamba.AesMambaProcessor"


def test_exported_folder_loads_without_the_package(exported_p, tmp_path):
    _, model, processor, result = exported_p
    image = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(image)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", REMOTE_SCRIPT, str(result.path), str(image), json.dumps(USER)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    remote = json.loads(proc.stdout.strip().splitlines()[-1])
    assert remote["loaded"] == []
    assert remote["model_module"].startswith("transformers_modules.")
    assert remote["processor_module"].startswith("transformers_modules.")

    inputs = processor(images=[str(image)], users=[USER], return_tensors="pt")
    with torch.no_grad():
        local = model(**inputs).scores
    assert remote["input_ids"] == inputs["input_ids"].tolist()
    assert remote["pixel_sum"] == pytest.approx(float(inputs["pixel_values"].double().sum()), rel=1e-6)
    assert local.abs().max() > 1e-2  # a real signal, not the near-zero initial output
    np.testing.assert_allclose(np.asarray(remote["scores"]), local.numpy(), rtol=1e-5, atol=1e-5)


def test_model_card(exported_p):
    _, _, _, result = exported_p
    readme = (result.path / "README.md").read_text()
    meta = front_matter(readme)
    assert meta["library_name"] == "transformers"
    assert meta["pipeline_tag"] == "image-classification"
    assert meta["license"] == "apache-2.0"
    assert meta["datasets"] == ["PARA"]
    assert {"aesmamba", "image-aesthetic-assessment", "custom_code", "aesmamba-p"} <= set(meta["tags"])
    assert "untrained" not in meta["tags"]
    metric = meta["model-index"][0]["results"][0]["metrics"][0]
    assert (metric["type"], metric["value"]) == ("plcc", 0.91)
    for head in ("aesthetic", "quality", "willingToShare"):
        assert f"| `{head}` | scalar score | 1 – 5 | yes |" in readme
    assert "10.1145/3664647.3681011" in readme and "Gao, Fei" in readme
    assert 'AutoModel.from_pretrained("someone/aesmamba-p-test", trust_remote_code=True)' in readme
    assert "mean [0.48145466, 0.4578275, 0.40821073]" in readme
    assert "| aesthetic | 0.9100 | 0.9000 | 0.8000 |" in readme
    assert "UNTRAINED" not in readme


def test_untrained_variant_export_via_cli(tmp_path, monkeypatch, capsys):
    """A variant alias without offline weights: refused, unless random weights are asked for; then marked."""
    from aesmamba_hf.cli import main
    from aesmamba_hf.hub import export as hub_export

    configs = tmp_path / "hub_configs" / "aesmamba-v-aadb"
    tiny = AesMambaConfig.tiny("V", dataset="AADB", variant="aesmamba-v-aadb")
    tiny.vision_config.scan_backend = "chunked"
    tiny.save_pretrained(configs)
    monkeypatch.setenv("AESMAMBA_HUB_CONFIGS", str(tmp_path / "hub_configs"))
    monkeypatch.setattr(hub_export, "_cached_variant_snapshot", lambda variant: None)  # nothing in the Hub cache
    out = tmp_path / "out"
    # no opt-in: refused with what to do, nothing written
    assert main(["export", "aesmamba-v-aadb", str(out)]) == 1
    err = capsys.readouterr().err
    assert "no trained weights" in err and "--random-weights" in err and "--weights" in err
    assert not out.exists() or not any(out.iterdir())
    assert main(["export", "aesmamba-v-aadb", str(out), "--random-weights"]) == 0
    err = capsys.readouterr().err
    assert "UNTRAINED" in err
    readme = (out / "README.md").read_text()
    meta = front_matter(readme)
    assert "untrained" in meta["tags"] and meta["datasets"] == ["AADB"]
    assert "**UNTRAINED MODEL — RANDOM WEIGHTS.**" in readme
    assert "| `aesthetic` | scalar score | 0 – 1 | yes | 0.5 |" in readme
    assert "mean [0.4370215, 0.42606467, 0.39389639]" in readme  # AADB's own normalization
    config = json.loads((out / "config.json").read_text())
    assert config["random_weights"] is True and "untrained" not in config  # one mark
    assert not (out / "RANDOM_WEIGHTS.txt").exists()
    assert {"selective_scan_cpu.py", "dataset_specs.py", "processor_config.json"} <= {p.name for p in out.iterdir()}
    assert main(["export", "aesmamba-v-aadb", str(tmp_path / "strict"), "--random-weights", "--require-trained"]) == 1
    assert "no trained weights" in capsys.readouterr().err
    assert main(["export", "aesmamba-v-aadb", str(out), "--random-weights"]) == 1
    assert "not empty" in capsys.readouterr().err
    # the marked folder is refused as a source without the opt-in; re-exported with it, it stays marked
    assert main(["export", str(out), str(tmp_path / "again")]) == 1
    assert "RANDOM weights" in capsys.readouterr().err
    assert main(["export", str(out), str(tmp_path / "again"), "--random-weights"]) == 0
    assert "untrained" in front_matter((tmp_path / "again" / "README.md").read_text())["tags"]


def test_check_remote_code_reports_missing_files(exported_p, tmp_path):
    from aesmamba_hf.hub import ExportError, check_remote_code

    _, _, _, result = exported_p
    assert "selective_scan_cpu.py" in check_remote_code(result.path)
    broken = tmp_path / "broken"
    shutil.copytree(result.path, broken)
    (broken / "selective_scan_cpu.py").unlink()
    (broken / "losses.py").write_text((broken / "losses.py").read_text() + "\nimport aesmamba_hf.metrics\n")
    with pytest.raises(ExportError) as info:
        check_remote_code(broken)
    message = str(info.value)
    assert "selective_scan.py imports .selective_scan_cpu" in message
    assert "losses.py imports aesmamba_hf" in message


def test_publish_refuses_offline(exported_p, monkeypatch, capsys, tmp_path):
    from aesmamba_hf.cli import main
    from aesmamba_hf.hub import PublishError, publish_folder

    _, _, _, result = exported_p
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    with pytest.raises(PublishError, match="offline mode .*HF_HUB_OFFLINE"):
        publish_folder(result.path, "someone/aesmamba-p-test")
    assert main(["publish", str(result.path), "--repo-id", "someone/aesmamba-p-test", "--private"]) == 1
    err = capsys.readouterr().err
    assert "aesmamba publish: error:" in err and "HF_HUB_OFFLINE" in err
    # folders that are not exports and bare repo names are refused before any network use
    (tmp_path / "empty").mkdir()
    with pytest.raises(PublishError, match="not an exported model folder"):
        publish_folder(tmp_path / "empty", "someone/x")
    with pytest.raises(PublishError, match="ORG_OR_USER/NAME"):
        publish_folder(result.path, "aesmamba-p")


def test_model_card_renders_piaa_summary():
    from aesmamba_hf.hub import build_model_card

    summary = {"protocol": "piaa", "description": "40 users, shots [10, 100], 10 repeats",
               "summary": {"10": {"aesthetic": {"plcc": {"mean": 0.7491, "std_repeats": 0.0083},
                                                "srcc": {"mean": 0.7071, "std_repeats": 0.0049},
                                                "num_users": 40, "num_repeats": 10}}}}
    card = str(build_model_card(AesMambaConfig.tiny("P", variant="aesmamba-p-para"), metrics=summary))
    assert "| 10 | aesthetic | 0.7491 ± 0.0083 | 0.7071 ± 0.0049 | 40 | 10 |" in card
    assert "40 users, shots [10, 100], 10 repeats" in card
    # an untrained export never shows metrics
    untrained = str(build_model_card(AesMambaConfig.tiny("P"), trained=False, metrics=summary))
    assert "0.7491" not in untrained and "UNTRAINED MODEL" in untrained


IMAGE_ONLY_SCRIPT = REMOTE_SCRIPT.split("folder, image, user")[0] + r"""
folder, image = sys.argv[1], sys.argv[2]
model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
with torch.no_grad():
    scores = model(**processor(images=[image], return_tensors="pt")).scores
print(json.dumps({"processor": type(processor.image_processor).__module__, "scores": scores.tolist()}))
"""


def test_image_only_export_loads_its_processor_without_the_package(tmp_path):
    """V/F processors carry no tokenizer: the nested image processor must name its remote class itself."""
    from aesmamba_hf.hub import export_model

    config = AesMambaConfig.tiny("F")
    config.architectures = ["AesMambaForAestheticAssessment"]
    model = AesMambaForAestheticAssessment(config).eval()
    result = export_model(model, tmp_path / "f")
    image = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (30, 44, 3), dtype=np.uint8)).save(image)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", IMAGE_ONLY_SCRIPT, str(result.path), str(image)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    remote = json.loads(proc.stdout.strip().splitlines()[-1])
    assert remote["processor"].startswith("transformers_modules.")
    from aesmamba_hf.inference.loading import load_model

    local = load_model(result.path).predictor().predict(str(image))[0]
    np.testing.assert_allclose(remote["scores"][0], [h["score"] for h in local["heads"].values()], rtol=1e-5)
