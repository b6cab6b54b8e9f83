"""Multi-process (DDP) training: the same ``train()`` / ``aesmamba train``, started once per process.

Launch it with torchrun or accelerate; every process builds the data, the Trainer splits the batches, the
global ``batch_size`` of the recipe is divided by the number of processes, and only rank 0 writes files::

    # GPUs (one process per GPU)
    torchrun --nproc_per_node 4 examples/ddp_train.py v-ava --data-root /data/AVA
    accelerate launch --multi_gpu --num_processes 4 examples/ddp_train.py v-ava --data-root /data/AVA

    # CPU only: two processes with the gloo backend (use_cpu is chosen automatically without CUDA)
    torchrun --nproc_per_node 2 examples/ddp_train.py --toy
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no \\
        --dynamo_backend no examples/ddp_train.py --toy
    # NOT `accelerate launch --cpu --num_processes 2 ...`: --cpu always starts a single process.

Arguments after the script are those of ``aesmamba train`` (a recipe name or JSON config plus overrides).
``--toy`` trains a tiny model on a synthetic 32-px data set (brightness → score) in a temporary folder: a
one-minute check that a multi-process set-up works; it prints the world size and the final metrics.
"""

from __future__ import annotations

import os
import sys
import tempfile


def toy_run() -> int:
    import numpy as np
    import torch.distributed as dist
    from datasets import Dataset, Features, Image, List, Value
    from PIL import Image as PILImage

    from aesmamba_hf.training import TrainConfig, train

    folder = os.path.join(tempfile.gettempdir(), "aesmamba_ddp_toy")
    os.makedirs(folder, exist_ok=True)

    def make(n: int, seed: int, prefix: str) -> Dataset:
        rng = np.random.default_rng(seed)
        rows = {"image": [], "labels": [], "class_labels": [], "source": []}
        for i in range(n):
            pixels = np.clip(rng.uniform(0.15, 0.85) + rng.normal(0, 0.06, (32, 32, 3)), 0, 1)
            path = os.path.join(folder, f"{prefix}{i}.png")
            if int(os.environ.get("RANK", "0")) == 0 or not os.path.exists(path):
                PILImage.fromarray((pixels * 255).round().astype(np.uint8)).save(path)
            score = float(10 * pixels.mean())
            rows["image"].append(path)
            rows["labels"].append([score])
            rows["class_labels"].append([min(int(score // 2), 4)])
            rows["source"].append(f"{prefix}:{i}")
        features = Features({"image": Image(), "labels": List(Value("float64")),
                             "class_labels": List(Value("int64")), "source": Value("string")})
        return Dataset.from_dict(rows, features=features)

    train_ds, val_ds = make(96, 0, "train"), make(48, 1, "val")
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
    config = TrainConfig(task="V", dataset="TAD66K", tiny=True, image_size=32, train_resize=36, batch_size=16,
                         learning_rate=1e-2, min_learning_rate=1e-3, epochs=6, weight_decay=0.0,
                         output_dir=os.path.join(folder, "run"), resume=False, logging_steps=6)
    result = train(config, train_dataset=train_ds, eval_dataset=val_ds)
    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"world size {world}: {result.global_step} steps, validation loss "
              f"{result.validation_metrics['eval_loss']:.4f}, SRCC {result.validation_metrics['eval_srcc']:.4f}")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--toy"]:
        return toy_run()
    from aesmamba_hf.cli import main as cli_main

    return cli_main(["train", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
