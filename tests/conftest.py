"""Shared test set-up."""

from __future__ import annotations

import os

import pytest
from PIL import ImageFile


@pytest.fixture(autouse=True)
def _strict_pil(monkeypatch):
    """Truncated images must fail to decode in every test (PIL's default; some libraries switch it on)."""
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", False)


# CI (.ci/run) installs every optional feature the tests exercise (Ray, Gradio, Chromium, onnxruntime, PyAV,
# Triton); there a test skipped for a missing one is a broken install, not an optional feature: fail it.
_MISSING_DEPENDENCY_REASONS = ("could not import", "is not installed", "no browser for the page test")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not (report.skipped and os.environ.get("AESMAMBA_REQUIRE_OPTIONAL") == "1"):
        return
    reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if any(marker in reason for marker in _MISSING_DEPENDENCY_REASONS):
        report.outcome = "failed"
        report.longrepr = f"AESMAMBA_REQUIRE_OPTIONAL=1 but skipped for a missing dependency: {reason}"
