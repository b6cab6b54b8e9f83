"""Charts of one record or two: the vote histogram of a distribution head, the PARA attributes as bars.

Figures are ``matplotlib.figure.Figure`` objects made without pyplot, so nothing is kept in a global figure
list between requests (Gradio's ``gr.Plot`` renders them to PNG in memory).
"""

from __future__ import annotations

from typing import Any, Optional

from matplotlib.figure import Figure

COLORS = ("#3b6fb6", "#e07b39")


def _figure(width: float = 6.0, height: float = 3.2) -> tuple[Figure, Any]:
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return figure, figure.add_subplot()


def distribution_chart(records: list[dict[str, Any]], labels: list[str]) -> Optional[Figure]:
    """Predicted vote histograms (probability per bin) of one or two records; ``None`` without one."""
    shown = [(r, label) for r, label in zip(records, labels) if r.get("distribution")]
    if not shown:
        return None
    figure, axes = _figure()
    width = 0.8 / len(shown)
    for k, (record, label) in enumerate(shown):
        bins = record["distribution"]["bins"]
        offset = (k - (len(shown) - 1) / 2) * width
        axes.bar([b + offset for b in bins], record["distribution"]["probabilities"], width=width,
                 color=COLORS[k % 2], label=f"{label} (mean {record['score']:.2f})")
        axes.set_ylim(0, max(1e-6, *record["distribution"]["probabilities"], axes.get_ylim()[1]) * 1.1)
        axes.set_xticks(bins)
    axes.set_xlabel("vote")
    axes.set_ylabel("predicted share of votes")
    if len(shown) == 1:
        axes.set_title(f"Vote distribution · {shown[0][1]} (mean {shown[0][0]['score']:.2f})", fontsize=10)
    else:
        axes.set_title("Vote distribution", pad=24)
        axes.legend(loc="lower center", fontsize=8, bbox_to_anchor=(0.5, 1.0), ncols=2, frameon=False)
    return figure


def attributes_chart(records: list[dict[str, Any]], labels: list[str]) -> Figure:
    """Every head's score as a horizontal bar on its range (the nine PARA attributes for F/P models)."""
    heads = list(records[0]["heads"])
    figure, axes = _figure(6.0, 0.45 * len(heads) * len(records) + 1.2)
    height = 0.8 / len(records)
    for k, (record, label) in enumerate(zip(records, labels)):
        positions = [i + (k - (len(records) - 1) / 2) * height for i in range(len(heads))]
        values = [record["heads"][h]["score"] for h in heads]
        bars = axes.barh(positions, values, height=height, color=COLORS[k % 2], label=label)
        axes.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=7, padding=2)
    low = min(r["heads"][h]["score_range"][0] for r in records for h in heads)
    high = max(r["heads"][h]["score_range"][1] for r in records for h in heads)
    axes.set_xlim(min(low, 0.0), high * 1.08)
    axes.axvline(low, color="#999", linewidth=0.8, linestyle=":")
    axes.set_yticks(range(len(heads)), heads)
    axes.invert_yaxis()
    axes.set_xlabel(f"score (range {low:g}–{high:g})")
    axes.set_title("Attributes" if len(heads) > 1 else "Score")
    if len(records) > 1:
        axes.legend(loc="lower right", fontsize=8)
    return figure


def record_chart(records: list[dict[str, Any]], labels: list[str]) -> Optional[Figure]:
    """The chart that fits the model: vote histogram for a distribution head, else the head bars."""
    records_ok = [r for r in records if r.get("status", "ok") == "ok"]
    if not records_ok:
        return None
    labels = [label for r, label in zip(records, labels) if r.get("status", "ok") == "ok"]
    return distribution_chart(records_ok, labels) or attributes_chart(records_ok, labels)


def ranking_chart(names: list[str], scores: list[float], score_range: tuple[float, float]) -> Figure:
    """The ranked photos' overall scores, best first."""
    figure, axes = _figure(6.0, 0.32 * len(names) + 1.2)
    bars = axes.barh(range(len(names)), scores, color=COLORS[0])
    axes.bar_label(bars, labels=[f"{s:.2f}" for s in scores], fontsize=7, padding=2)
    axes.set_yticks(range(len(names)), [f"#{i + 1} {n[:28]}" for i, n in enumerate(names)], fontsize=8)
    axes.invert_yaxis()
    axes.set_xlim(min(score_range[0], min(scores), 0.0), max(score_range[1], max(scores)) * 1.08)
    axes.set_xlabel(f"overall score (range {score_range[0]:g}–{score_range[1]:g})")
    axes.set_title("Ranking")
    return figure


__all__ = ["attributes_chart", "distribution_chart", "ranking_chart", "record_chart"]
