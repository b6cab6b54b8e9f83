"""Headless Debian Chromium driven by Selenium, offline (for tests/test_app.py and scripts/app_screenshots.py)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

CHROMIUM = os.environ.get("AESMAMBA_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("AESMAMBA_CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,1600")


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or ``None``."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} is not installed (bash scripts/install.sh installs chromium and chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


@contextmanager
def chromium(width: int = 1280, height: int = 1600) -> Iterator[Any]:
    """A headless Chromium with a fresh profile, removed afterwards; never the network (loopback only)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="aesmamba-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(driver: Any, css: str, timeout: float = 120, text: str | None = None) -> Any:
    """The first element matching ``css`` once it is visible (and contains ``text`` when given)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def found(d: Any) -> Any:
        for element in d.find_elements(By.CSS_SELECTOR, css):
            if element.is_displayed() and (text is None or text in element.text):
                return element
        return False

    return WebDriverWait(driver, timeout, poll_frequency=0.25).until(found)


def upload(driver: Any, elem_id: str, paths: Sequence[str], timeout: float = 120) -> None:
    """Put files into the Gradio file component ``#elem_id`` and wait until Gradio has received them."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait_for(driver, f"#{elem_id}", timeout)
    field = driver.find_element(By.CSS_SELECTOR, f"#{elem_id} input[type=file]")
    field.send_keys("\n".join(os.path.abspath(p) for p in paths))
    names = [os.path.basename(p) for p in paths]
    WebDriverWait(driver, timeout, poll_frequency=0.25).until(
        lambda d: all(n in d.find_element(By.CSS_SELECTOR, f"#{elem_id}").text.replace("\n", "") for n in names))


def click(driver: Any, elem_id: str) -> None:
    wait_for(driver, f"#{elem_id}").click()


def open_tab(driver: Any, label: str) -> None:
    """Click the tab button whose text is ``label``."""
    from selenium.webdriver.common.by import By

    wait_for(driver, "button[role=tab]")
    for button in driver.find_elements(By.CSS_SELECTOR, "button[role=tab]"):
        if button.text.strip() == label:
            button.click()
            return
    raise AssertionError(f"no tab {label!r}")
