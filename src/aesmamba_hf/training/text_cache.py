"""Memoised text features of a frozen text encoder.

With the BERT of an M/P model frozen (the usual setting on small data), the same comment or prompt produces the
same token states in every epoch, evaluation and few-shot run, yet the encoder is re-run each time and costs more
than the image encoder (a 6-layer MiniLM over 64 tokens vs a small VMamba at 128 px). Inside
:func:`cached_text_encoder` every distinct token row is encoded once, in eval mode (no dropout: a frozen feature
extractor), and its states are reused; the model's modules, weights and ``state_dict`` are untouched.

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
def cached_text_encoder(model: Any) -> Iterator[TextFeatureCache]:
    """Within the block, ``model``'s text encoder computes each distinct token row once.

    ``model``: an ``AesMambaForAestheticAssessment`` / ``AesMambaModel`` with a text encoder whose parameters are
    all frozen and whose fusion masks the padding (``mask_text_padding=True``): padded positions are then never
    read, so a row's states do not depend on how far its batch was padded. Raises ``ValueError`` otherwise.
    Leave the encoder frozen inside the block, and do not deep-copy the model there: a copy would keep reading
    this encoder through the cache.
    """
    base = getattr(model, "aesmamba", model)
    text = getattr(base, "text_model", None)
    if text is None:
        raise ValueError("cached_text_encoder: this model has no text encoder (V/F variants read no text)")
    if any(p.requires_grad for p in text.parameters()):
        raise ValueError("cached_text_encoder: the text encoder has trainable parameters; its states would change "
                         "during training (freeze it, e.g. text_trainable_layers=0)")
    if not model.config.mask_text_padding:
        raise ValueError("cached_text_encoder: the fusion reads padded positions (mask_text_padding=False, the "
                         "authors' behaviour), so states depend on the batch's padding; cannot cache")
    cache = TextFeatureCache()
    encode = text.forward

    def forward(input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None,
                token_type_ids: Optional[torch.Tensor] = None, **kwargs: Any) -> BaseModelOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        ids, mask = input_ids.cpu(), attention_mask.cpu()
        types = token_type_ids.cpu() if token_type_ids is not None else None
        lengths = [_real_length(mask[i]) for i in range(len(ids))]
        keys = [_key(ids[i], None if types is None else types[i], n) for i, n in enumerate(lengths)]
        missing = list(dict.fromkeys(k for k in keys if k not in cache.states))
        if missing:
            rows = [keys.index(k) for k in missing]
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
            for j, (k, i) in enumerate(zip(missing, rows)):
                cache.states[k] = out[j, : lengths[i]].clone()
        cache.misses += len(missing)
        cache.hits += len(keys) - len(missing)
        first = cache.states[keys[0]]
        states = first.new_zeros(len(keys), input_ids.shape[1], first.shape[-1])
        for i, k in enumerate(keys):
            states[i, : lengths[i]] = cache.states[k]
        return BaseModelOutput(last_hidden_state=states.to(input_ids.device))

    text.forward = forward  # an instance attribute: nn.Module.__call__ dispatches to it, the weights stay put
    try:
        yield cache
    finally:
        del text.forward


__all__ = ["TextFeatureCache", "cached_text_encoder"]
