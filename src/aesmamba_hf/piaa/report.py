"""PIAA results: per-run metric rows, the mean ± std summary, the Markdown table, CSV and box plot."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from ..dataset_specs import PARA_ATTRIBUTE_NAMES
from ..io_utils import atomic_open, atomic_savefig
from ..metrics import finite_mean, plcc, srcc
from .sampling import CSV_COLUMNS, ZERO_SHOT, PathLike


def _metric_records(user: str, k: Union[int, str], repeat: int, seed: Optional[int], scores: np.ndarray,
                    targets: np.ndarray, columns: list[int], extra: dict[str, Any]) -> list[dict[str, Any]]:
    records = []
    for j, attribute in enumerate(PARA_ATTRIBUTE_NAMES):
        pred, true = scores[:, columns[j]], targets[:, j]
        records.append({"user": user, "k": k, "repeat": repeat, "seed": "" if seed is None else seed,
                        "attribute": attribute, "plcc": plcc(pred, true), "srcc": srcc(pred, true), **extra})
    return records


def _std(values: Sequence[float]) -> float:
    values = [v for v in values if v == v]
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """mean ± std of PLCC/SRCC per k and attribute (and their mean over attributes, ``"mean"``).

    ``mean``: over users of the per-user mean over repeats; ``std_users``: spread of those per-user means;
    ``std_repeats``: spread over repeats of the mean over users (the paper's ± in Table 4). NaN correlations
    (constant predictions or targets) are left out of the means.
    """
    keys: list[str] = []
    for r in records:
        key = ZERO_SHOT if r["k"] in (0, ZERO_SHOT) else str(r["k"])
        if key not in keys:
            keys.append(key)
    keys.sort(key=lambda s: -1 if s == ZERO_SHOT else int(s))
    summary: dict[str, dict[str, Any]] = {}
    for key in keys:
        block: dict[str, Any] = {}
        rows_k = [r for r in records if (ZERO_SHOT if r["k"] in (0, ZERO_SHOT) else str(r["k"])) == key]
        for attribute in [*PARA_ATTRIBUTE_NAMES, "mean"]:
            rows = rows_k if attribute == "mean" else [r for r in rows_k if r["attribute"] == attribute]
            users = sorted({r["user"] for r in rows})
            repeats = sorted({r["repeat"] for r in rows})
            entry: dict[str, Any] = {"num_users": len(users), "num_repeats": len(repeats)}
            for metric in ("plcc", "srcc"):
                per_user = [finite_mean(r[metric] for r in rows if r["user"] == u) for u in users]
                per_repeat = [finite_mean(r[metric] for r in rows if r["repeat"] == rep) for rep in repeats]
                entry[metric] = {"mean": finite_mean(per_user), "std_users": _std(per_user),
                                 "std_repeats": _std(per_repeat)}
            block[attribute] = entry
        summary[key] = block
    return summary


def summary_table(summary: dict[str, dict[str, Any]]) -> str:
    """Markdown table: one row per attribute, PLCC and SRCC (mean ± std over repeats) per k."""
    keys = list(summary)
    label = {k: ("zero-shot" if k == ZERO_SHOT else f"{k}-shot") for k in keys}
    head = "| attribute | " + " | ".join(f"PLCC {label[k]} | SRCC {label[k]}" for k in keys) + " |"
    lines = [head, "|---" * (1 + 2 * len(keys)) + "|"]
    for attribute in [*PARA_ATTRIBUTE_NAMES, "mean"]:
        cells = []
        for k in keys:
            entry = summary[k][attribute]
            for metric in ("plcc", "srcc"):
                m = entry[metric]
                cells.append(f"{m['mean']:.4f} ± {m['std_repeats']:.4f}")
        lines.append(f"| {attribute} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_boxplot(records: Sequence[dict[str, Any]], path: PathLike, attribute: str = "aesthetic",
                 title: str = "") -> Path:
    """Box plots of the SRCC of ``attribute`` per k: per user (mean over repeats), and per repeat (mean over
    users, the paper's Fig. 1 view)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in records if r["attribute"] == attribute]
    keys = sorted({ZERO_SHOT if r["k"] in (0, ZERO_SHOT) else str(r["k"]) for r in rows},
                  key=lambda s: -1 if s == ZERO_SHOT else int(s))
    labels = ["zero-shot" if k == ZERO_SHOT else f"{k}-shot" for k in keys]

    def of(key: str) -> list[dict[str, Any]]:
        return [r for r in rows if (ZERO_SHOT if r["k"] in (0, ZERO_SHOT) else str(r["k"])) == key]

    per_user = [[finite_mean(r["srcc"] for r in of(k) if r["user"] == u) for u in sorted({r["user"] for r in of(k)})]
                for k in keys]
    per_repeat = [[finite_mean(r["srcc"] for r in of(k) if r["repeat"] == rep)
                   for rep in sorted({r["repeat"] for r in of(k)})] for k in keys]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    rng = np.random.default_rng(0)
    for ax, data, what in ((axes[0], per_user, "per user (mean over repeats)"),
                           (axes[1], per_repeat, "per repeat (mean over users)")):
        clean = [[v for v in d if v == v] or [float("nan")] for d in data]
        ax.boxplot(clean, showmeans=True)
        ax.set_xticks(range(1, len(labels) + 1), labels)
        for i, values in enumerate(clean, start=1):
            ax.scatter(i + rng.uniform(-0.12, 0.12, len(values)), values, s=10, alpha=0.6, color="tab:blue")
        ax.set_title(f"{attribute} SRCC, {what}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("SRCC")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)
    return Path(path)


def _write_csv(records: Sequence[dict[str, Any]], path: Path) -> None:
    with atomic_open(path, newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(CSV_COLUMNS), extrasaction="ignore")
        writer.writeheader()
        for r in records:
            writer.writerow({**r, "plcc": "" if r["plcc"] != r["plcc"] else f"{r['plcc']:.6f}",
                             "srcc": "" if r["srcc"] != r["srcc"] else f"{r['srcc']:.6f}"})


__all__ = ["plot_boxplot", "summarize", "summary_table"]
