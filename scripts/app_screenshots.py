"""Screenshots of the web app's three views (docs/img/app-{score,compare,personal}.png), taken in headless Chromium.

    python scripts/app_screenshots.py                      # the models `aesmamba demo` trained (the default app)
    python scripts/app_screenshots.py --model DIR ...       # other models (the first P model drives the personal view)
    python scripts/app_screenshots.py --tiny                # no demo output: tiny untrained models (RANDOM banner)

Photos: the demo's bundled photographs (demo/src/aesmamba_demo/photos). Offline; needs /usr/bin/chromium and
/usr/bin/chromedriver (scripts/install.sh) and the app extra (gradio).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

from _browser import chromium, click, missing_browser, open_tab, upload, wait_for  # noqa: E402

PHOTOS = ROOT / "demo" / "src" / "aesmamba_demo" / "photos"


def tiny_models(folder: Path) -> list[Path]:
    """Tiny untrained V (AVA), F and P models, marked as random weights (the page shows the banner)."""
    from aesmamba_hf import AesMambaConfig, AesMambaForAestheticAssessment
    from aesmamba_hf.inference.loading import default_processor_for_config

    paths = []
    for task, dataset in (("V", "AVA"), ("F", None), ("P", None)):
        config = AesMambaConfig.tiny(task=task, dataset=dataset, random_weights=True)
        path = folder / f"tiny-{task.lower()}"
        AesMambaForAestheticAssessment(config).save_pretrained(path)
        default_processor_for_config(config).save_pretrained(path)  # M/P: the loader adds the bundled vocab
        paths.append(path)
    return paths


def choose_model(driver, name: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = wait_for(driver, "#aes-model input")
    box.click()
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(name)
    box.send_keys(Keys.ENTER)
    wait_for(driver, "#aes-model-info", text=name)
    driver.find_element(By.TAG_NAME, "body").click()


def shoot(driver, path: Path) -> None:
    """The whole page, not only the window."""
    import base64
    import io

    from PIL import Image

    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"captureBeyondViewport": True, "format": "png"})
    image = Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("RGB")
    image.quantize(256).save(path, optimize=True)  # a palette PNG: a third of the size, fine for docs
    print(f"wrote {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=None, help="model folder (repeat); default: the demo's")
    parser.add_argument("--demo-dir", default=None, help="the aesmamba demo output folder (default ./aesmamba-demo-output)")
    parser.add_argument("--tiny", action="store_true", help="use tiny untrained models (no demo output needed)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "img"), help="folder of the PNGs (default docs/img)")
    args = parser.parse_args()
    reason = missing_browser()
    if reason:
        print(f"app_screenshots: {reason}", file=sys.stderr)
        return 1
    from aesmamba_hf.app import load_served_models, serve

    scratch = tempfile.TemporaryDirectory(prefix="aesmamba-shots-")
    models = tiny_models(Path(scratch.name)) if args.tiny else args.model
    served = load_served_models(models, allow_random=args.tiny, demo_dir=args.demo_dir)
    names = {m.task.value: m.name for m in served}
    photos = sorted(str(p) for p in PHOTOS.glob("*.jpg"))[:8]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = serve(models, port=port, block=False, quiet=True, allow_random=args.tiny, demo_dir=args.demo_dir)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        with chromium(1280, 1400) as driver:
            driver.get(app.url)
            if "F" in names:
                choose_model(driver, names["F"])
            upload(driver, "aes-photos", photos[:6])
            click(driver, "aes-score-button")
            wait_for(driver, "#aes-gallery img")
            shoot(driver, out / "app-score.png")

            if "V" in names:
                choose_model(driver, names["V"])
            open_tab(driver, "Compare")
            upload(driver, "aes-compare-a", photos[:1])
            upload(driver, "aes-compare-b", photos[1:2])
            click(driver, "aes-compare-button")
            wait_for(driver, "#aes-compare-result .aes-verdict")
            shoot(driver, out / "app-compare.png")

            if "P" in names:
                choose_model(driver, names["P"])
                open_tab(driver, "Personal")
                upload(driver, "aes-personal-photos", photos[:5])
                click(driver, "aes-personal-button")
                wait_for(driver, "#aes-personal-gallery img")
                shoot(driver, out / "app-personal.png")
            else:
                print("no P model served: app-personal.png not taken", file=sys.stderr)
    finally:
        app.close()
        scratch.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
