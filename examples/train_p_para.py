"""Personalised AesMamba-P on PARA: a generic P model, then one fine-tuned model per user.

    # stage 1 (once): all PARA-PiaaTrain users
    python examples/train_p_para.py /data/PARA --stage generic --text-model google-bert/bert-base-uncased
    # stage 2: per user, from the generic model; prints the per-user test PLCC/SRCC and their mean
    python examples/train_p_para.py /data/PARA --stage users --users A0c1 B9x2 ...
    python examples/train_p_para.py /data/PARA --stage both --smoke --tokenizer /path/to/bert-uncased

The PARA root holds ``imgs/``, ``annotation/PARA-Piaa{Train,Test}.csv`` and ``annotation/PARA-UserInfo.csv``.
Every row's user profile (Big-Five, art and photography experience) becomes the SMP prompt the text encoder
reads. The authors keep each user's epoch with the best *test* SRCC; here 20% of the user's training images
are held out for that choice and the test metrics are reported only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from aesmamba_hf.training import load_recipe, train


def smoke(config, **extra):
    return config.replace(tiny=True, max_steps=10, batch_size=8, max_train_samples=64, max_eval_samples=32,
                          learning_rate=1e-3, dataloader_num_workers=0, eval_strategy="steps", eval_steps=5,
                          text_model=None, **extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_root", help="PARA dataset root")
    parser.add_argument("--stage", choices=["generic", "users", "both"], default="both")
    parser.add_argument("--users", nargs="*", default=None, help="userId values (default: all in PiaaTest)")
    parser.add_argument("--output-dir", default="runs/aesmamba-p-para")
    parser.add_argument("--text-model", help="BERT weights for the text encoder (stage 1)")
    parser.add_argument("--tokenizer", help="tokenizer folder (default: the text model's)")
    parser.add_argument("--vision-checkpoint", help="VMamba-T ImageNet checkpoint (stage 1)")
    parser.add_argument("--smoke", action="store_true", help="tiny model, a few steps per stage")
    args = parser.parse_args()
    out = Path(args.output_dir)
    generic_dir = out / "generic"

    if args.stage in ("generic", "both"):
        config = load_recipe("p-para-generic", data_root=args.data_root, output_dir=str(generic_dir),
                             text_model=args.text_model, tokenizer=args.tokenizer,
                             vision_checkpoint=args.vision_checkpoint)
        if args.smoke:
            config = smoke(config, vision_checkpoint=None)
        result = train(config)
        print(f"generic P model: validation {result.metric_for_best_model} = {result.best_metric:.4f}")

    if args.stage in ("users", "both"):
        users = args.users
        if not users:
            import pandas as pd

            test_csv = Path(args.data_root) / "annotation" / "PARA-PiaaTest.csv"
            users = sorted(pd.read_csv(test_csv, usecols=["userId"], dtype=str)["userId"].str.strip().unique())
        per_user = {}
        for user in users:
            done = out / "users" / user / "train_result.json"
            if done.is_file():  # finished earlier (the loop is resumable user by user)
                test = json.loads(done.read_text()).get("test_metrics") or {}
                per_user[user] = {k.removeprefix("test_"): test[k] for k in ("test_srcc_aesthetic",
                                                                             "test_plcc_aesthetic") if k in test}
                continue
            config = load_recipe("p-para", data_root=args.data_root, model=str(generic_dir),
                                 output_dir=str(out / "users" / user), dataset_kwargs={"users": [user]},
                                 tokenizer=args.tokenizer, evaluate_test=True)
            if args.smoke:
                config = smoke(config)
            result = train(config)
            test = result.test_metrics or {}
            per_user[user] = {k.removeprefix("test_"): test[k] for k in ("test_srcc_aesthetic", "test_plcc_aesthetic")
                              if k in test}
            print(user, per_user[user])
        summary = {key: float(np.nanmean([m[key] for m in per_user.values() if key in m]))
                   for key in ("srcc_aesthetic", "plcc_aesthetic")}
        (out / "per_user_test.json").write_text(json.dumps({"users": per_user, "mean": summary}, indent=2))
        print(f"mean over {len(per_user)} users:", summary)


if __name__ == "__main__":
    main()
