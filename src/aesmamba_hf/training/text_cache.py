"""Memoised text features of a frozen text encoder.

With the BERT of an M/P model frozen (the usual setting on small data), the same comment or prompt produces the
same token states in every epoch, evaluation and few-shot run, yet the encoder is re-run each time and costs more
than the image encoder (the demo: a 6-layer MiniLM over up to 128 tokens vs a small VMamba at 128 px). Inside
:func:`cached_text_encoder` every distinct token row is encoded once, in eval mode, and its states are reused; the
model's modules, weights and ``state_dict`` are untouched. Two consequences: training no longer applies the frozen
encoder's dropout (a cached run differs from an uncached one), and the states stay in memory, about
rows x tokens x hidden x 4 bytes (the demo's 7,680 comment rows: ~0.5 GB; all of AVA with BERT-base: tens of GB,
too much), on the CPU by default.

    with cached_text_encoder(model) as cache:
        trainer.train()
    print(cache.hits, cache.misses)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from transformers.modeling_outputs import BaseModelOutput


@dataclass
class TextFeatureCache:
    """Token states per distinct row (keyed by its real tokens); ``hits``/``misses`` count rows."""

    states: dict[bytes, torch.Tensor] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0


def _real_length(mask_row: torch.Tensor) -> int:
    length = int(mask_row.sum())
    if not bool(mask_row[:length].all()):
        raise ValueError("cached_text_encoder needs right-padded rows (attention_mask = 1...1 0...0)")
    return length


def _key(ids: torch.Tensor, types: Optional[torch.Tensor], length: int) -> bytes:
    key = ids[:length].to(torch.int64).numpy().tobytes()
    return key if types is None else key + b"|" + types[:length].to(torch.int64).numpy().tobytes()


@contextlib.contextmanager
def cached_text_encoder(model: Any, offload: bool = True) -> Iterator[TextFeatureCache]:
    """Within the block, ``model``'s text encoder computes each distinct token row once.

    ``model``: an ``AesMambaForAestheticAssessment`` / ``AesMambaModel`` with a text encoder whose parameters are
    all frozen and whose fusion masks the padding (``mask_text_padding=True``): padded positions are then never
    read, so a row's states do not depend on how far its batch was padded. Raises ``ValueError`` otherwise, and
    for nested use on the same model. ``offload``: keep the cached states on the CPU (True) or on the device they
    were computed on. The returned ``last_hidden_state`` is zero at padded positions.

    Leave the encoder frozen inside the block, and do not deep-copy or replicate the model there: a copy (e.g.
    ``nn.DataParallel``'s) would keep reading this encoder through the cache.
    """
    base = getattr(model, "aesmamba", model)
    text = getattr(base, "text_model", None)
    if text is None:
        raise ValueError("cached_text_encoder: this model has no text encoder (V/F variants read no text)")
    if any(p.requires_grad for p in text.parameters()):
        raise ValueError("cached_text_encoder: the text encoder has trainable parameters; its states would change "
                         "during training (freeze it: model.aesmamba.text_model.requires_grad_(False))")
    if not model.config.mask_text_padding:
        raise ValueError("cached_text_encoder: the fusion reads padded positions (mask_text_padding=False, the "
                         "authors' behaviour), so states depend on the batch's padding; cannot cache")
    if "forward" in vars(text):
        raise ValueError("cached_text_encoder: this model's text encoder is already cached (nested use)")
    cache = TextFeatureCache()
    encode = text.forward
    hidden = text.config.hidden_size

    def forward(input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None,
                token_type_ids: Optional[torch.Tensor] = None, **kwargs: Any) -> BaseModelOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        ids, mask = input_ids.cpu(), attention_mask.cpu()
        types = token_type_ids.cpu() if token_type_ids is not None else None
        lengths = [_real_length(mask[i]) for i in range(len(ids))]
        keys = [_key(ids[i], None if types is None else types[i], n) for i, n in enumerate(lengths)]
        first_row: dict[bytes, int] = {}
        for i, k in enumerate(keys):
            first_row.setdefault(k, i)
        missing = [k for k in first_row if k not in cache.states]
        rows = [first_row[k] for k in missing if lengths[first_row[k]] > 0]
        for k in missing:
            if lengths[first_row[k]] == 0:  # an all-padding row: nothing to encode
                cache.states[k] = torch.zeros(0, hidden)
        if rows:
            width = max(lengths[i] for i in rows)
            was_training = text.training
            text.eval()
            try:
                with torch.no_grad():
                    out = encode(
                        input_ids=input_ids[rows, :width], attention_mask=attention_mask[rows, :width],
                        token_type_ids=None if token_type_ids is None else token_type_ids[rows, :width],
                    ).last_hidden_state
            finally:
                text.train(was_training)
            for j, i in enumerate(rows):
                state = out[j, : lengths[i]]
                cache.states[keys[i]] = state.to("cpu", copy=True) if offload else state.clone()
        cache.misses += len(missing)
        cache.hits += len(keys) - len(missing)
        dtype = next(text.parameters()).dtype  # follows a model.to(dtype) made after states were cached
        home = torch.device("cpu") if offload else input_ids.device
        states = torch.zeros(len(keys), input_ids.shape[1], hidden, dtype=dtype, device=home)
        for i, k in enumerate(keys):
            states[i, : lengths[i]] = cache.states[k].to(home, dtype)
        return BaseModelOutput(last_hidden_state=states.to(input_ids.device))

    text.forward = forward  # an instance attribute: nn.Module.__call__ dispatches to it, the weights stay put
    try:
        yield cache
    finally:
        del text.forward


__all__ = ["TextFeatureCache", "cached_text_encoder"]
