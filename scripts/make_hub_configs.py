"""Regenerate ``hub_configs/<variant>/config.json`` for the released AesMamba variants.

Run from the repository root: ``python scripts/make_hub_configs.py``.
"""

from __future__ import annotations

from pathlib import Path

from aesmamba_hf import AesMambaConfig
from aesmamba_hf.variants import VARIANTS

ROOT = Path(__file__).resolve().parents[1] / "hub_configs"


def main() -> None:
    for name, variant in VARIANTS.items():
        config = AesMambaConfig(task=variant.task, dataset=variant.dataset, variant=name)
        config.architectures = ["AesMambaForAestheticAssessment"]
        out = ROOT / name
        out.mkdir(parents=True, exist_ok=True)
        config.to_json_file(out / "config.json")
        print(f"wrote {out / 'config.json'}")


if __name__ == "__main__":
    main()
