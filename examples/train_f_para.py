"""Train AesMamba-F (the nine PARA attributes) with the authors' recipe, then score an image with the result.

    python examples/train_f_para.py /data/PARA --vision-checkpoint vssmtiny_dp01_ckpt_epoch_292.pth
    python examples/train_f_para.py /data/PARA --smoke

The PARA root holds ``imgs/<session>/<image>`` and ``annotation/PARA-Giaa{Train,Test}.csv``. Recipe: batch 64,
AdamW lr 1e-4, 100 epochs, cosine with T_max 50 epochs (the LR comes back up, as released), loss = Σ MSE +
0.001 balanced CE over the 9 heads; the best epoch is the one with the best mean validation SRCC.
"""

from __future__ import annotations

import argparse

import torch
from transformers import AutoModel, AutoProcessor

import aesmamba_hf  # noqa: F401  (registers the Auto classes)
from aesmamba_hf.training import load_recipe, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_root", help="PARA dataset root")
    parser.add_argument("--output-dir", default="runs/aesmamba-f-para")
    parser.add_argument("--vision-checkpoint", help="VMamba-T ImageNet checkpoint for the image encoder")
    parser.add_argument("--image", help="an image to score with the trained model")
    parser.add_argument("--smoke", action="store_true", help="tiny model, 20 steps, 256 images")
    args = parser.parse_args()

    config = load_recipe("f-para", data_root=args.data_root, output_dir=args.output_dir,
                         vision_checkpoint=args.vision_checkpoint, evaluate_test=True)
    if args.smoke:
        config = config.replace(tiny=True, max_steps=20, batch_size=16, max_train_samples=256,
                                max_eval_samples=64, learning_rate=1e-3, dataloader_num_workers=0,
                                vision_checkpoint=None, eval_strategy="steps", eval_steps=10)
    result = train(config)
    metrics = result.validation_metrics
    print("validation SRCC per attribute:",
          {k.removeprefix("eval_srcc_"): round(v, 3) for k, v in metrics.items() if k.startswith("eval_srcc_")})

    if args.image:  # the output folder is a normal transformers checkpoint
        model = AutoModel.from_pretrained(result.output_dir).eval()
        processor = AutoProcessor.from_pretrained(result.output_dir)
        with torch.no_grad():
            scores = model(**processor(images=args.image)).scores[0]
        print(dict(zip(model.config.head_names, [round(s, 2) for s in scores.tolist()])))


if __name__ == "__main__":
    main()
