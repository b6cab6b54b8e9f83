#!/usr/bin/env bash
# The test suite (README command 2): offline, CPU, lint + pytest. Sets up .venv on first use.
set -euo pipefail
. "$(dirname "$0")/_env.sh"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
ruff check src tests benchmarks scripts examples demo
python -m pytest -q -p no:cacheprovider "$@"
