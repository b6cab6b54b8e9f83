#!/usr/bin/env bash
# The main job on the embedded default (README command 1): offline end-to-end demo on CPU.
# The demo is its own package (aesmamba-demo, demo/): installed into .venv on first use, with the library.
set -euo pipefail
. "$(dirname "$0")/_env.sh"
# _env.sh installs both packages; this also covers a .venv whose demo package went missing since
if ! python -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("aesmamba_demo") is None)'; then
  python -m pip install -q -e demo
fi
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
aesmamba demo "$@"
