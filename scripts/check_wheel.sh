#!/usr/bin/env bash
# CI step (.ci/run, after the test suite): the library wheel built from this checkout installs into a fresh
# virtual environment and works there.
#
#   1. builds the aesmamba-hf wheel from a clean copy of the checkout (tracked + untracked-but-not-ignored files,
#      so no stale build/ folder can leak into it) and checks its contents: the library and its data files,
#      neither the demo package (aesmamba_demo, demo/) nor its photographs;
#   2. creates a fresh venv in a temporary folder, installs CPU torch==2.13.0 first (like scripts/install.sh: a
#      bare torch requirement would pull the CUDA build) and then the wheel with its dependencies;
#   3. outside the repository: `aesmamba --help`; `aesmamba demo` without the demo package says how to install
#      it; and a Python check that aesmamba_hf is imported from the venv (not the source tree), builds a tiny
#      model, saves it with its processor and scores a generated image with pipeline("image-aesthetics").
#
# Usage: bash scripts/check_wheel.sh        PYTHON=python3.12 picks the interpreter (default python3).
# Where torch 2.13.0's CPU build is not on a configured index or find-links, point pip at it, e.g.
# PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu. Takes minutes (torch and the dependencies come
# from pip's cache or the index; the ~200 MB CPU torch wheel dominates a cold run).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
work="$(mktemp -d "${TMPDIR:-/tmp}/aesmamba-wheel-check.XXXXXX")"
trap 'rm -rf "$work"' EXIT
t0=$SECONDS
step() { printf '[check_wheel %3ds] %s\n' "$((SECONDS - t0))" "$*"; }
# pip, without the "Location 'file:///...' is ignored" lines that a partial local index mirror causes per package
pip() { "$py" -m pip "$@" 2> >(grep -v "^WARNING: Location 'file:" >&2); }

step "fresh virtual environment ($("$PYTHON" --version 2>&1)) in $work/venv"
"$PYTHON" -m venv "$work/venv"
py="$work/venv/bin/python"
pip install -q --upgrade pip

step "building the aesmamba-hf wheel from a clean copy of $ROOT"
mkdir "$work/checkout"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
  | while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done \
  | tar --null -T - -cf -) | tar -C "$work/checkout" -xf -
pip wheel -q --no-deps -w "$work/dist" "$work/checkout"
wheels=("$work"/dist/aesmamba_hf-*.whl)
[ "${#wheels[@]}" -eq 1 ] && [ -f "${wheels[0]}" ] || { echo "check_wheel: expected one aesmamba_hf wheel in $work/dist" >&2; exit 1; }
wheel="${wheels[0]}"

"$py" - "$wheel" "$work/checkout/src" <<'EOF'
import os
import sys
import zipfile
from pathlib import Path

path, src = sys.argv[1], Path(sys.argv[2])
names = zipfile.ZipFile(path).namelist()
demo = [n for n in names if n.split("/")[0] == "aesmamba_demo" or n.startswith("demo/") or "collect_photos" in n]
images = [n for n in names if n.lower().endswith((".jpg", ".jpeg", ".png")) or "/photos/" in n]
assert not demo, f"the wheel holds the demo package: {demo[:5]}"
assert not images, f"the wheel holds images: {images[:5]}"
# every file of the library's source tree (code and package data) is in the wheel
source = {p.relative_to(src).as_posix() for p in (src / "aesmamba_hf").rglob("*")
          if p.is_file() and "__pycache__" not in p.parts}
missing = sorted(source - set(names))
assert not missing, f"the wheel lacks {len(missing)} files of src/: {missing[:5]}"
assert "aesmamba_hf/__init__.py" in names and "aesmamba_hf/cli/__init__.py" in names
print(f"  {os.path.basename(path)}: {len(names)} files ({len(source)} from src/aesmamba_hf), "
      f"{os.path.getsize(path) / 1e6:.2f} MB; no demo package, no images")
EOF

step "installing CPU torch==2.13.0, then the wheel and its dependencies"
pip install -q --no-compile "torch==2.13.0"  # --no-compile: .pyc files are written on first import
pip install -q --no-compile "$wheel"
"$py" -c 'import torch; print("  torch", torch.__version__, "CUDA", torch.version.cuda or "none")'

step "running the installed package outside the repository"
mkdir "$work/run"
cd "$work/run"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
unset PYTHONPATH
"$work/venv/bin/aesmamba" --help > help.txt
grep -q "demo" help.txt && grep -q "score" help.txt
if "$work/venv/bin/aesmamba" demo --quick --out demo-out 2> demo.err; then
  echo "check_wheel: \`aesmamba demo\` ran without the demo package" >&2; exit 1
fi
grep -q "pip install -e demo" demo.err || { cat demo.err >&2; exit 1; }
[ ! -e demo-out ] || { echo "check_wheel: \`aesmamba demo\` wrote output without the demo package" >&2; exit 1; }
AESMAMBA_REPO="$ROOT" "$py" - <<'EOF'
import importlib.metadata
import importlib.util
import math
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from transformers import pipeline

import aesmamba_hf
from aesmamba_hf import AesMambaConfig, AesMambaForAestheticAssessment, AesMambaImageProcessor, AesMambaProcessor

where = Path(aesmamba_hf.__file__).resolve()
assert Path(sys.prefix).resolve() in where.parents, f"aesmamba_hf was imported from {where}, not the venv"
assert Path(os.environ["AESMAMBA_REPO"]).resolve() not in where.parents, f"aesmamba_hf imported from {where}"
assert importlib.util.find_spec("aesmamba_demo") is None, "installing the wheel installed the demo package"

config = AesMambaConfig.tiny()
model = AesMambaForAestheticAssessment(config).eval()
folder = Path("tiny-model")
model.save_pretrained(folder)
AesMambaProcessor(image_processor=AesMambaImageProcessor()).save_pretrained(folder)

pipe = pipeline("image-aesthetics", model=str(folder))
image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8))
result = pipe(image)
score = result["score"]
assert isinstance(score, float) and math.isfinite(score), result
print(f"  aesmamba-hf {importlib.metadata.version('aesmamba-hf')} imported from {where.parent}")
print(f"  pipeline('image-aesthetics') on a saved tiny model: score {score:.4f} "
      f"(range {result['score_range']}, scan backend {config.vision_config.scan_backend})")
EOF
step "OK: the wheel installs into a fresh venv and runs there"
