"""Train AesMamba-V on AVA with the authors' recipe, from Python.

    python examples/train_v_ava.py /data/AVA --vision-checkpoint vssmtiny_dp01_ckpt_epoch_292.pth
    python examples/train_v_ava.py /data/AVA --smoke            # tiny model, 20 steps: checks the pipeline

The AVA root holds ``AVA.txt`` and ``images/<id>.jpg`` (optionally ``train.txt``/``test.txt``). 5% of the
training images are held out to pick the best epoch (validation PLCC); the test split is only reported.
Re-running the same command resumes from the last checkpoint in the output folder.
"""

from __future__ import annotations

import argparse

from aesmamba_hf.training import load_recipe, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_root", help="AVA dataset root")
    parser.add_argument("--output-dir", default="runs/aesmamba-v-ava")
    parser.add_argument("--vision-checkpoint", help="VMamba-T ImageNet checkpoint for the image encoder")
    parser.add_argument("--smoke", action="store_true", help="tiny model, 20 steps, 256 images")
    args = parser.parse_args()

    config = load_recipe(
        "v-ava",
        data_root=args.data_root,
        output_dir=args.output_dir,
        vision_checkpoint=args.vision_checkpoint,
        evaluate_test=True,
    )
    if args.smoke:
        config = config.replace(tiny=True, max_steps=20, max_train_samples=256, max_eval_samples=64,
                                learning_rate=1e-3, dataloader_num_workers=0, vision_checkpoint=None,
                                eval_strategy="steps", eval_steps=10)
    result = train(config)
    print(f"best validation {result.metric_for_best_model} = {result.best_metric:.4f} "
          f"({result.best_checkpoint}); model saved in {result.output_dir}")
    if result.test_metrics:
        print("test:", {k: round(v, 4) for k, v in result.test_metrics.items() if isinstance(v, float)})


if __name__ == "__main__":
    main()
