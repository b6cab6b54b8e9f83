"""The HTML the page shows: result tables, score cards, comparisons and messages (escaped, no scripts).

Every score is written twice: rounded for people, and exact in a ``data-score`` attribute (the browser test
reads it back and compares it with the pipeline's score for the same photo).
"""

from __future__ import annotations

from html import escape
from typing import Any, Optional

from .models import ServedModel
from .scoring import PhotoResult


def message(text: str, kind: str = "error") -> str:
    """A message box (``error``, ``warning`` or ``info``) with a stable class for tests and CSS."""
    return f'<div class="aes-message aes-{kind}" role="status">{escape(text)}</div>'


def _range(record: dict[str, Any]) -> str:
    low, high = record["score_range"]
    return f"{low:g}–{high:g}"


def _percentile(record: dict[str, Any]) -> str:
    """The record's percentile among the model's reference images, when the model carries a reference."""
    if record.get("percentile") is None:
        return ""
    value = record["percentile"]
    return (f' <span class="aes-percentile" data-percentile="{value!r}" title="share of the model\'s reference '
            f'images that scored at or below this score">percentile {value:.0f}</span>')


def _score_cell(record: dict[str, Any]) -> str:
    flag = (f' <span class="aes-flag" title="outside the head\'s range {_range(record)}">⚠ out of range</span>'
            if record.get("out_of_range") else "")
    return (f'<span class="aes-score" data-score="{record["score"]!r}">{record["score"]:.2f}</span>'
            f"{_percentile(record)}{flag}")


def score_card(result: PhotoResult, served: ServedModel) -> str:
    """One photo: the overall score large, its range, and each further head's score."""
    record = result.record
    better = "higher is better" if record.get("higher_is_better", True) else "lower is better"
    heads = "".join(f'<li>{escape(name)}: <span class="aes-head" data-head="{escape(name)}" '
                    f'data-score="{head["score"]!r}">{head["score"]:.2f}</span>{_percentile(head)}</li>'
                    for name, head in record["heads"].items()) if len(record["heads"]) > 1 else ""
    return (f'<div class="aes-card" data-name="{escape(result.name)}"><div class="aes-big">{_score_cell(record)}</div>'
            f'<div>{escape(result.name)} — overall score on {_range(record)} ({better}), model '
            f'{escape(served.name)}</div>' + (f'<ul class="aes-heads">{heads}</ul>' if heads else "") + "</div>")


def errors_html(results: list[PhotoResult]) -> str:
    failed = [r for r in results if not r.ok]
    if not failed:
        return ""
    items = "".join(f"<li><b>{escape(r.name)}</b>: {escape(r.error or '')}</li>" for r in failed)
    return (f'<div class="aes-message aes-error" role="status">{len(failed)} file(s) could not be scored '
            f"(the others were):<ul>{items}</ul></div>")


def results_html(results: list[PhotoResult], ranked: list[PhotoResult], served: ServedModel) -> str:
    """The score card of a single photo or the ranked table of many, then the files that failed."""
    summary = (f'<p class="aes-summary">Scored {len(ranked)} of {len(results)} photo(s) with '
               f"<b>{escape(served.name)}</b>.</p>")
    if len(ranked) == 1:
        body = score_card(ranked[0], served)
    elif ranked:
        rows = "".join(f'<tr class="aes-row" data-name="{escape(r.name)}"><td>{i}</td><td>{escape(r.name)}</td>'
                       f"<td>{_score_cell(r.record)}</td><td>{_range(r.record)}</td></tr>"
                       for i, r in enumerate(ranked, start=1))
        body = (f'<table class="aes-table"><thead><tr><th>#</th><th>photo</th><th>score</th><th>range</th></tr>'
                f"</thead><tbody>{rows}</tbody></table>")
    else:
        body = ""
    return f'<div class="aes-results">{summary}{body}{errors_html(results)}</div>'


def compare_html(a: PhotoResult, b: PhotoResult, served: ServedModel) -> str:
    """Two photos side by side and which one the model prefers."""
    cards = "".join(f'<div class="aes-compare-side"><h4>{side}</h4>{score_card(r, served)}</div>'
                    for side, r in (("A", a), ("B", b)) if r.ok)
    if not (a.ok and b.ok):
        return f'<div class="aes-results">{cards}{errors_html([a, b])}</div>'
    difference = a.score - b.score
    if not a.record.get("higher_is_better", True):
        difference = -difference
    verdict = ("A and B score the same (to two decimals)" if abs(difference) < 0.005 else
               f"{'A' if difference > 0 else 'B'} ({escape((a if difference > 0 else b).name)}) scores "
               f"{abs(a.score - b.score):.2f} better on {_range(a.record)}")
    return (f'<div class="aes-results"><p class="aes-verdict">{verdict}</p>'
            f'<div class="aes-compare">{cards}</div></div>')


def personal_html(generic: list[PhotoResult], personal: list[PhotoResult], label: str) -> str:
    """The same photos ranked for everyone and for this user: rank and score in each column."""
    generic_rank = {r.path: (i, r) for i, r in enumerate(generic, start=1)}
    rows = []
    for i, r in enumerate(personal, start=1):
        g_rank, g = generic_rank.get(r.path, (None, None))
        move = "" if g_rank is None else ("=" if g_rank == i else f"{g_rank - i:+d}")
        rows.append(f'<tr class="aes-row" data-name="{escape(r.name)}"><td>{i}</td><td>{escape(r.name)}</td>'
                    f"<td>{_score_cell(r.record)}</td><td>{g_rank or '–'}</td>"
                    f"<td>{'' if g is None else f'{g.score:.2f}'}</td><td>{move}</td></tr>")
    return (f'<table class="aes-table"><thead><tr><th>#</th><th>photo</th><th>{escape(label)}</th>'
            f"<th>generic #</th><th>generic score</th><th>moved</th></tr></thead><tbody>{''.join(rows)}</tbody>"
            "</table>")


def gallery_items(ranked: list[PhotoResult], prefix: Optional[str] = None) -> list[tuple[str, str]]:
    return [(r.path, f"#{i} {prefix + ' · ' if prefix else ''}{r.name} · {r.score:.2f}")
            for i, r in enumerate(ranked, start=1)]


__all__ = ["compare_html", "errors_html", "gallery_items", "message", "personal_html", "results_html",
           "score_card"]
