"""The page: a Gradio ``Blocks`` with the Score, Compare and Personal views and the ``score`` API endpoint.

Handlers only translate between components and :class:`~aesmamba_hf.app.scoring.AppScorer`; every score comes
from the served model's one ``Predictor``. A handler never raises into Gradio for bad input: it answers with a
message on the page (the API endpoint raises ``gr.Error`` with the reason, which clients receive).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..image_processing_aesmamba import ImageLoadError
from ..prompts import BIG_FIVE_TRAITS, EXPERIENCE_LEVELS
from . import personal, render
from .charts import ranking_chart, record_chart
from .models import DEMO_NOTE
from .scoring import AppScorer, rank, upload_paths

logger = logging.getLogger(__name__)

CSS = """
.aes-big { font-size: 2.4em; font-weight: 600; }
.aes-message { padding: .6em .9em; border-radius: 6px; margin: .4em 0; }
.aes-error { background: #fdecea; color: #8a1c12; border: 1px solid #f5c2bd; }
.aes-warning { background: #fff4e5; color: #7a4a00; border: 1px solid #ffd9a8; }
.aes-info { background: #eaf2fd; color: #123d73; border: 1px solid #bcd4f5; }
.aes-flag { color: #b35900; font-size: .8em; }
.aes-table td, .aes-table th { padding: 2px 8px; }
.aes-compare { display: flex; gap: 2em; }
"""
EXPECTED_ERRORS = (ValueError, TypeError, OSError, ImageLoadError, RuntimeError)


def _guarded(message_outputs: Callable[[str], tuple]) -> Callable:
    """Turn an expected failure of a handler into a message on the page (the app keeps serving)."""
    def wrap(handler: Callable) -> Callable:
        @functools.wraps(handler)
        def run(*args: Any) -> Any:
            try:
                return handler(*args)
            except EXPECTED_ERRORS as err:
                logger.warning("%s failed: %s", handler.__name__, err)
                return message_outputs(render.message(f"{err}"))
        return run
    return wrap


def header_markdown(scorer: AppScorer) -> str:
    lines = ["# AesMamba: how good does a photo look?",
             "Drop photos to score them, compare two, or rank them for your own taste. Higher is better."]
    if any(m.demo for m in scorer.models.values()):
        lines.append(DEMO_NOTE)
    return "\n\n".join(lines)


def random_banner(scorer: AppScorer) -> str:
    names = [m.name for m in scorer.models.values() if m.random_weights]
    if not names:
        return ""
    return render.message(f"RANDOM WEIGHTS (allowed with --random-weights): {', '.join(names)} — their scores "
                          "are meaningless. Train a model (aesmamba train) or convert a checkpoint.", "warning")


def build_app(scorer: AppScorer, workdir: Path) -> Any:
    """The Blocks of the app (launch it with :func:`aesmamba_hf.app.server.launch`)."""
    import gradio as gr

    first = scorer.model(None)
    with gr.Blocks(title="AesMamba", analytics_enabled=False) as blocks:
        gr.Markdown(header_markdown(scorer), elem_id="aes-header")
        banner = random_banner(scorer)
        if banner:
            gr.HTML(banner, elem_id="aes-banner")
        with gr.Row():
            model = gr.Dropdown(scorer.names, value=first.name, label="Model", elem_id="aes-model", scale=1)
            info = gr.Markdown(first.describe(), elem_id="aes-model-info")
        with gr.Tabs():
            with gr.Tab("Score", id="score", elem_id="aes-tab-score"):
                comment = _score_tab(gr, scorer, model)
            with gr.Tab("Compare", id="compare", elem_id="aes-tab-compare"):
                compare_comments = _compare_tab(gr, scorer, model)
            with gr.Tab("Personal", id="personal", elem_id="aes-tab-personal"):
                personal_note = _personal_tab(gr, scorer, model, workdir)
        _api(gr, scorer)

        def on_model(name: str) -> tuple:
            served = scorer.model(name)
            reads = served.task.reads_comments
            note = "" if served.task.reads_user_profile else render.message(
                f"{served.name} is a task-{served.task} model; the personal view needs a P (personalised) model "
                f"({', '.join(n for n, m in scorer.models.items() if m.task.reads_user_profile) or 'none served'}).",
                "info")
            return (served.describe(), gr.update(visible=reads), gr.update(visible=reads),
                    gr.update(visible=reads), note)

        model.change(on_model, model, [info, comment, *compare_comments, personal_note])
        blocks.load(on_model, model, [info, comment, *compare_comments, personal_note])
    return blocks


def _score_tab(gr: Any, scorer: AppScorer, model: Any) -> Any:
    with gr.Row():
        with gr.Column(scale=1):
            photos = gr.File(file_count="multiple", label="Photos (one or many)", elem_id="aes-photos")
            comment = gr.Textbox(label="Comments about the photos (M models read them)", lines=2,
                                 visible=False, elem_id="aes-comment")
            button = gr.Button("Score", variant="primary", elem_id="aes-score-button")
        with gr.Column(scale=1):
            result = gr.HTML(elem_id="aes-score-result")
            detail = gr.Plot(label="Best photo", elem_id="aes-chart")
    ranking = gr.Plot(label="Ranking", visible=False, elem_id="aes-ranking-chart")
    gallery = gr.Gallery(label="Ranked, best first", columns=5, height=320, object_fit="contain", elem_id="aes-gallery")

    @_guarded(lambda html: (html, None, gr.update(visible=False), []))
    def score(name: str, files: Any, text: str) -> tuple:
        paths = upload_paths(files)
        if not paths:
            return render.message("Upload one or more photos first."), None, gr.update(visible=False), []
        served = scorer.model(name)
        results = scorer.score_files(name, paths, comment=text)
        ranked = rank(results, served.overall_head.get("higher_is_better", True))
        chart = record_chart([ranked[0].record], [ranked[0].name]) if ranked else None
        many = len(ranked) > 1
        order = ranking_chart([r.name for r in ranked], [r.score for r in ranked],
                              tuple(served.overall_head["score_range"])) if many else None
        return (render.results_html(results, ranked, served), chart, gr.update(value=order, visible=many),
                render.gallery_items(ranked))

    button.click(score, [model, photos, comment], [result, detail, ranking, gallery], api_name=False)
    return comment


def _compare_tab(gr: Any, scorer: AppScorer, model: Any) -> tuple:
    with gr.Row():
        with gr.Column():
            photo_a = gr.File(label="Photo A", elem_id="aes-compare-a")
            comment_a = gr.Textbox(label="Comments on A (M models)", visible=False)
        with gr.Column():
            photo_b = gr.File(label="Photo B", elem_id="aes-compare-b")
            comment_b = gr.Textbox(label="Comments on B (M models)", visible=False)
    button = gr.Button("Compare", variant="primary", elem_id="aes-compare-button")
    result = gr.HTML(elem_id="aes-compare-result")
    with gr.Row():
        chart = gr.Plot(label="Side by side", elem_id="aes-compare-chart")
        gallery = gr.Gallery(label="A and B", columns=2, height=320, object_fit="contain", elem_id="aes-compare-gallery")

    @_guarded(lambda html: (html, None, []))
    def compare(name: str, file_a: Any, file_b: Any, text_a: str, text_b: str) -> tuple:
        paths = upload_paths(file_a)[:1], upload_paths(file_b)[:1]
        if not (paths[0] and paths[1]):
            return render.message("Upload two photos, A and B."), None, []
        served = scorer.model(name)
        a = scorer.score_files(name, paths[0], comment=text_a)[0]
        b = scorer.score_files(name, paths[1], comment=text_b)[0]
        chart = record_chart([a.record, b.record], [f"A {a.name}", f"B {b.name}"])
        shown = [(r.path, f"{side} · {r.name}" + (f" · {r.score:.2f}" if r.ok else " · error"))
                 for side, r in (("A", a), ("B", b))]
        return render.compare_html(a, b, served), chart, shown

    button.click(compare, [model, photo_a, photo_b, comment_a, comment_b], [result, chart, gallery],
                 api_name=False)
    return comment_a, comment_b


def _profile_form(gr: Any) -> list[Any]:
    with gr.Row():
        traits = [gr.Slider(1, 10, value=5, step=1, label=f"{field.capitalize()} (Big-Five, 1–10)",
                            elem_id=f"aes-{field}") for field, _, _ in BIG_FIVE_TRAITS]
    with gr.Row():
        art = gr.Dropdown(list(EXPERIENCE_LEVELS), value="competent", label="Artistic experience")
        photo = gr.Dropdown(list(EXPERIENCE_LEVELS), value="competent", label="Photographic experience")
    return [*traits, art, photo]


def _personal_tab(gr: Any, scorer: AppScorer, model: Any, workdir: Path) -> Any:
    note = gr.HTML(elem_id="aes-personal-note")
    gr.Markdown("### Your profile\nThe characters of the Subject Multi-character Prompt (SMP); a P model reads "
                "the prompt below with each photo.")
    form = _profile_form(gr)
    prompt = gr.Textbox(label="The prompt your profile builds", interactive=False, lines=3, elem_id="aes-prompt")
    photos = gr.File(file_count="multiple", label="Photos to rank for you", elem_id="aes-personal-photos")
    button = gr.Button("Rank for me", variant="primary", elem_id="aes-personal-button")
    result = gr.HTML(elem_id="aes-personal-result")
    gallery = gr.Gallery(label="Ranked for you, best first", columns=5, height=320, object_fit="contain",
                         elem_id="aes-personal-gallery")
    gr.Markdown(f"### Rate {personal.MIN_RATINGS} to {personal.MAX_RATED_PHOTOS} photos → your adapter\nType "
                "your overall rating of the first photos above; a small adapter learns your taste from them.")
    adapter_note = gr.HTML("", elem_id="aes-adapter-note")
    ratings = gr.Dataframe(headers=["photo", "your rating"], datatype=["str", "number"], col_count=(2, "fixed"),
                           interactive=True, elem_id="aes-ratings", type="array")
    train = gr.Button("Train my adapter and re-rank", elem_id="aes-adapter-button")
    adapted_gallery = gr.Gallery(label="Re-ranked with your adapter", columns=5, height=320, object_fit="contain",
                                 elem_id="aes-adapter-gallery")

    def show_prompt(name: str, *values: Any) -> str:
        try:
            return personal.prompt_for(personal.profile_from_form(*values), scorer.model(name))
        except (ValueError, TypeError) as err:
            return f"(no prompt: {err})"

    gr.on([c.change for c in (model, *form)], show_prompt, [model, *form], prompt, api_name=False)

    def p_model(name: str) -> Any:
        served = scorer.model(name)
        if not served.task.reads_user_profile:
            raise ValueError(f"{served.name} is a task-{served.task} model: choose a P (personalised) model "
                             "for this view")
        return served

    @_guarded(lambda html: (html, []))
    def rank_for_me(name: str, files: Any, *values: Any) -> tuple:
        served, paths = p_model(name), upload_paths(files)
        if not paths:
            return render.message("Upload the photos to rank first."), []
        profile = personal.profile_from_form(*values)
        higher = served.overall_head.get("higher_is_better", True)
        generic = rank(scorer.score_files(name, paths), higher)
        mine_all = scorer.score_files(name, paths, user=profile)
        mine = rank(mine_all, higher)
        return (render.personal_html(generic, mine, "your score") + render.errors_html(mine_all),
                render.gallery_items(mine))

    button.click(rank_for_me, [model, photos, *form], [result, gallery], api_name=False)
    photos.change(lambda files: [[os.path.basename(p), None]
                                 for p in upload_paths(files)[: personal.MAX_RATED_PHOTOS]],
                  photos, ratings, api_name=False)

    @_guarded(lambda html: (html, []))
    def adapt(name: str, files: Any, rows: Any, *values: Any) -> tuple:
        served, paths = p_model(name), upload_paths(files)
        rated = personal.ratings_from_table(list(rows or []), paths[: personal.MAX_RATED_PHOTOS],
                                            tuple(served.overall_head["score_range"]))
        if len(rated) < personal.MIN_RATINGS:
            return render.message(f"Type a rating for at least {personal.MIN_RATINGS} photos first "
                                  f"({len(rated)} so far)."), []
        profile = personal.profile_from_form(*values)
        predictor = personal.train_adapter(served, rated, profile, workdir)
        results = scorer.score_files(name, paths, user=profile, model=predictor)
        return (render.message(f"Your adapter learned from {len(rated)} rating(s); the photos re-ranked with it "
                               "are below.", "info"), render.gallery_items(rank(results, served.overall_head.get("higher_is_better", True))))

    train.click(adapt, [model, photos, ratings, *form], [adapter_note, adapted_gallery], api_name=False)
    return note


def score_api_result(scorer: AppScorer, path: Any, model_name: str = "", comment: str = ""
                     ) -> tuple[float, dict[str, float], Any]:
    """What ``/score`` returns for one image: the overall score, ``{head: score}`` and the overall percentile
    (``None`` when the model carries no score reference). Raises ``ValueError`` with the reason."""
    paths = upload_paths(path)
    if not paths:
        raise ValueError("no image given")
    result = scorer.score_files(model_name or None, paths[:1], comment=comment)[0]
    if not result.ok:
        raise ValueError(f"{result.name}: {result.error}")
    heads = {head: value["score"] for head, value in result.record["heads"].items()}
    return result.score, heads, result.record.get("percentile")


def _api(gr: Any, scorer: AppScorer) -> None:
    """``/score``: one image (+ model name, + comment for M) → the overall score, each head's score and the
    overall percentile (None without a score reference)."""
    with gr.Group(visible=False):
        image = gr.File(label="image")
        name = gr.Dropdown(scorer.names, value=scorer.names[0], label="model")
        text = gr.Textbox(value="", label="comment")
        score = gr.Number(label="score")
        heads = gr.JSON(label="heads")
        percentile = gr.Number(label="percentile")
        trigger = gr.Button()

    def score_api(path: Any, model_name: str, comment: str) -> tuple[float, dict[str, float], Any]:
        try:
            return score_api_result(scorer, path, model_name, comment)
        except EXPECTED_ERRORS as err:
            raise gr.Error(str(err)) from err

    trigger.click(score_api, [image, name, text], [score, heads, percentile], api_name="score")


__all__ = ["CSS", "build_app", "header_markdown", "score_api_result"]
