#!/usr/bin/env bash
# The test suite: offline, CPU, lint + pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
ruff check src tests benchmarks scripts examples
python -m pytest -q -p no:cacheprovider "$@"
