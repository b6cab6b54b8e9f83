"""Starting the app: a private temporary folder for everything Gradio writes, no network, a size limit.

Gradio keeps uploads in ``GRADIO_TEMP_DIR``; the app points it at a fresh ``aesmamba-app-*`` temporary folder
(adapters go there too) and removes the folder when the server closes, so nothing is written elsewhere.
Analytics are switched off before Gradio is imported and no share link is made.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from .models import load_served_models
from .scoring import DEFAULT_MAX_FILE_MB, AppScorer

OFFLINE_ENV = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_DISABLE_TELEMETRY": "1"}


def quiet_environment() -> None:
    """No analytics, version checks or telemetry (call before ``import gradio``; harmless after)."""
    os.environ.update(OFFLINE_ENV)


@dataclass
class RunningApp:
    """A launched app: its address, the Blocks, and the temporary folder it owns."""

    blocks: Any
    url: str
    workdir: Path

    def close(self) -> None:
        try:
            self.blocks.close()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _stop_on_sigterm() -> None:
    """``kill PID`` stops the server like Ctrl-C (Gradio closes it and the temporary folder is removed)."""
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


def create_app(sources: Optional[list[Any]] = None, *, allow_random: bool = False, demo_dir: Any = None,
               device: Optional[str] = None, max_file_mb: float = DEFAULT_MAX_FILE_MB,
               workdir: Optional[Path] = None) -> tuple[Any, Path]:
    """Load the models and build the page; returns the Blocks and the temporary folder it writes to."""
    quiet_environment()
    models = load_served_models(sources, allow_random=allow_random, demo_dir=demo_dir, device=device)
    if workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="aesmamba-app-"))
        atexit.register(shutil.rmtree, workdir, True)  # also when the caller never closes the app
    workdir = Path(workdir)
    uploads = workdir / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(uploads)  # read by Gradio when the components are built
    from .ui import build_app

    return build_app(AppScorer(models, max_file_mb=max_file_mb), workdir), workdir


def launch(blocks: Any, workdir: Path, *, host: str = "127.0.0.1", port: Optional[int] = None,
           max_file_mb: float = DEFAULT_MAX_FILE_MB, block: bool = True, quiet: bool = False) -> RunningApp:
    """Serve ``blocks``; with ``block=False`` return at once (tests, notebooks) and ``close()`` later."""
    from .ui import CSS

    os.environ["GRADIO_TEMP_DIR"] = str(workdir / "uploads")
    _, url, _ = blocks.launch(server_name=host, server_port=port, share=False, show_error=True, ssr_mode=False,
                              max_file_size=f"{max_file_mb:g}mb", prevent_thread_lock=True, quiet=quiet,
                              css=CSS, footer_links=["api"], enable_monitoring=False, mcp_server=False)
    app = RunningApp(blocks, url, workdir)
    if block:
        _stop_on_sigterm()
        try:
            blocks.block_thread()
        finally:
            app.close()
    return app


def serve(sources: Optional[list[Any]] = None, *, host: str = "127.0.0.1", port: Optional[int] = None,
          allow_random: bool = False, demo_dir: Any = None, device: Optional[str] = None,
          max_file_mb: float = DEFAULT_MAX_FILE_MB, block: bool = True, quiet: bool = False) -> RunningApp:
    """Load, build and launch in one call (what ``aesmamba app`` and a Space's ``app.py`` run)."""
    blocks, workdir = create_app(sources, allow_random=allow_random, demo_dir=demo_dir, device=device,
                                 max_file_mb=max_file_mb)
    try:
        return launch(blocks, workdir, host=host, port=port, max_file_mb=max_file_mb, block=block, quiet=quiet)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


__all__ = ["RunningApp", "create_app", "launch", "quiet_environment", "serve"]
