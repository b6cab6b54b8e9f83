"""Two-process data-parallel training on CPU (gloo) through ``train()``: same weights on both ranks, a global
batch split over the ranks, and an evaluation loss that is the true mean (not scaled by the world size).

Launched with ``torchrun --nproc_per_node 2`` (``accelerate launch --multi_gpu --num_processes 2
--num_machines 1 --mixed_precision no --dynamo_backend no`` is equivalent; ``accelerate launch --cpu`` would
start a single process: ``--cpu`` always uses the simple launcher).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from transformers import AutoModel, AutoProcessor

import aesmamba_hf  # noqa: F401
from _training_toy import make_toy_images
from aesmamba_hf.training import AesMambaDataCollator

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="torch.distributed with gloo is unavailable"
)


def test_two_process_training_matches_single_process_evaluation(tmp_path):
    data = tmp_path / "data"
    train_ds = make_toy_images(tmp_path / "img", 96, seed=0, prefix="train")
    val_ds = make_toy_images(tmp_path / "img", 48, seed=1, prefix="val")
    train_ds.save_to_disk(str(data / "train"))
    val_ds.save_to_disk(str(data / "validation"))
    out = tmp_path / "out"
    out.mkdir()

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(Path(__file__).with_name("_ddp_worker.py")), str(data), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]

    infos = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [i["world_size"] for i in infos] == [2, 2] and infos[0]["backend"] == "gloo"
    # global batch 16 = 8 per rank: 96 images → 6 optimizer steps per epoch, 2 epochs
    assert [i["global_step"] for i in infos] == [2 * math.ceil(96 / 16)] * 2

    # both ranks end with identical weights, and the saved model is those weights
    states = [torch.load(out / f"rank{r}.pt") for r in (0, 1)]
    assert states[0].keys() == states[1].keys()
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key
    model = AutoModel.from_pretrained(out / "run").eval()
    model.set_scan_backend("reference")
    saved = model.state_dict()
    assert all(torch.equal(saved[k], states[0][k]) for k in saved)

    # the distributed eval loss equals a single-process evaluation of the same weights over the same images
    processor = AutoProcessor.from_pretrained(out / "run")
    collate = AesMambaDataCollator.for_config(model.config, processor, train=False)
    rows = list(val_ds.cast_column("image", type(val_ds.features["image"])(decode=False)))
    with torch.no_grad():
        single = model(**collate(rows)).loss.item()
    for info in infos:
        ddp_loss = info["validation"]["eval_loss"]
        assert ddp_loss == pytest.approx(single, rel=1e-4), (ddp_loss, single)
    assert infos[0]["validation"]["eval_srcc"] == pytest.approx(infos[1]["validation"]["eval_srcc"])
