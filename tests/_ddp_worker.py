"""Worker of tests/test_ddp.py, started twice by ``torchrun --nproc_per_node 2``: trains the toy task with
``aesmamba_hf.training.train`` and writes this rank's final weights and metrics to OUT_DIR."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from datasets import load_from_disk

sys.path.insert(0, os.path.dirname(__file__))

from transformers import set_seed  # noqa: E402

from _training_toy import toy_config  # noqa: E402
from aesmamba_hf.training import build_model, train  # noqa: E402


def main(data_dir: str, out_dir: str) -> None:
    out = Path(out_dir)
    cfg = toy_config(out / "run", epochs=2, learning_rate=1e-2, min_learning_rate=1e-3, batch_size=16)
    set_seed(cfg.seed)
    model = build_model(cfg)
    result = train(cfg, model=model, train_dataset=load_from_disk(os.path.join(data_dir, "train")),
                   eval_dataset=load_from_disk(os.path.join(data_dir, "validation")))
    rank = dist.get_rank() if dist.is_initialized() else 0
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, out / f"rank{rank}.pt")
    info = {
        "rank": rank,
        "world_size": dist.get_world_size() if dist.is_initialized() else 1,
        "backend": dist.get_backend() if dist.is_initialized() else None,
        "global_step": result.global_step,
        "validation": result.validation_metrics,
    }
    (out / f"rank{rank}.json").write_text(json.dumps(info))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
