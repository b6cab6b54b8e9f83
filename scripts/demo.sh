#!/usr/bin/env bash
# The main job on the embedded default (README command 1): offline end-to-end demo on CPU.
set -euo pipefail
. "$(dirname "$0")/_env.sh"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
aesmamba demo "$@"
