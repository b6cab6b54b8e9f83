"""The frozen-text-encoder cache: same outputs, one encoder run per distinct row, weights untouched."""

import pytest
import torch

from aesmamba_hf import AesMambaConfig, AesMambaForAestheticAssessment
from aesmamba_hf.training import cached_text_encoder


def _model(**kwargs) -> AesMambaForAestheticAssessment:
    torch.manual_seed(0)
    model = AesMambaForAestheticAssessment(AesMambaConfig.tiny("M", **kwargs))
    for p in model.aesmamba.text_model.parameters():
        p.requires_grad = False
    return model


def _batch(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    return ids, mask


def test_cached_outputs_match_and_each_row_is_encoded_once():
    model = _model().eval()
    pixels = torch.randn(3, 3, 32, 32)
    ids, mask = _batch([[101, 2023, 2003, 102], [101, 2307, 102], [101, 2023, 2003, 102]])
    with torch.no_grad():
        plain = model(pixels, input_ids=ids, attention_mask=mask).scores
    calls = []
    model.aesmamba.text_model.encoder.register_forward_hook(lambda *a: calls.append(1))
    with cached_text_encoder(model) as cache:
        with torch.no_grad():
            first = model(pixels, input_ids=ids, attention_mask=mask).scores
            # the same rows padded wider in another batch: served from the cache, same scores
            ids2, mask2 = _batch([[101, 2307, 102], [101, 2023, 2003, 102], [101, 5, 6, 7, 8, 9, 102]])
            second = model(pixels, input_ids=ids2, attention_mask=mask2).scores
    assert torch.allclose(first, plain, atol=1e-5)
    assert cache.misses == 3 and cache.hits == 3  # rows a, b, a | b, a, c: a and b encoded once
    with torch.no_grad():
        assert torch.allclose(second, model(pixels, input_ids=ids2, attention_mask=mask2).scores, atol=1e-5)
    assert len(calls) == 3  # (a, b), then (c), then the plain call after the block (the cache is gone)


def test_training_through_the_cache_reaches_fusion_and_leaves_weights_in_place():
    model = _model().train()
    keys = set(model.state_dict())
    text_before = {k: v.clone() for k, v in model.aesmamba.text_model.state_dict().items()}
    ids, mask = _batch([[101, 2023, 102], [101, 2307, 2003, 102]])
    pixels, labels = torch.randn(2, 3, 32, 32), torch.tensor([[1.0] * 10, [2.0] * 10])

    def trainable_grads() -> dict[str, torch.Tensor]:
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        model.zero_grad(set_to_none=True)
        return grads

    # reference: the same step without the cache, the frozen encoder run deterministically (no dropout)
    model.aesmamba.text_model.eval()
    torch.manual_seed(5)
    model(pixels, input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
    plain = trainable_grads()
    model.aesmamba.text_model.train()
    with cached_text_encoder(model):
        torch.manual_seed(5)
        model(pixels, input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
    cached = trainable_grads()
    assert set(cached) == set(plain) and plain["aesmamba.fusion.to_kv.weight"].abs().sum() > 0
    for name, grad in plain.items():  # the text states reach the fusion as they would without the cache
        torch.testing.assert_close(cached[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    assert model.aesmamba.text_model.training  # the train/eval mode is restored after encoding
    assert set(model.state_dict()) == keys and "forward" not in vars(model.aesmamba.text_model)
    for k, v in model.aesmamba.text_model.state_dict().items():
        assert torch.equal(v, text_before[k])


def test_token_types_are_part_of_the_key_and_dtype_follows_the_model():
    model = _model().eval()
    pixels = torch.randn(2, 3, 32, 32)
    ids, mask = _batch([[101, 2023, 102], [101, 2023, 102]])
    types = torch.tensor([[0, 0, 0], [0, 1, 1]])
    with torch.no_grad():
        plain = model(pixels, input_ids=ids, attention_mask=mask, token_type_ids=types).scores
        with cached_text_encoder(model, offload=False) as cache:
            cached = model(pixels, input_ids=ids, attention_mask=mask, token_type_ids=types).scores
            assert cache.misses == 2 and cache.hits == 0  # same tokens, other segment ids: two rows
            model.double()  # states cached in float32 are served in the model's new dtype
            again = model(pixels.double(), input_ids=ids, attention_mask=mask, token_type_ids=types).scores
    assert torch.allclose(cached, plain, atol=1e-5) and again.dtype == torch.float64 and cache.hits == 2
    assert torch.allclose(again.float(), plain, atol=1e-4)


def test_refuses_what_it_cannot_cache():
    trainable = AesMambaForAestheticAssessment(AesMambaConfig.tiny("M"))
    with pytest.raises(ValueError, match="trainable"), cached_text_encoder(trainable):
        pass
    with pytest.raises(ValueError, match="mask_text_padding"), cached_text_encoder(_model(mask_text_padding=False)):
        pass
    with pytest.raises(ValueError, match="no text encoder"), cached_text_encoder(
            AesMambaForAestheticAssessment(AesMambaConfig.tiny("V"))):
        pass
    model = _model()
    ids = torch.tensor([[101, 0, 2023, 102]])
    with pytest.raises(ValueError, match="right-padded"), cached_text_encoder(model):
        model(torch.randn(1, 3, 32, 32), input_ids=ids, attention_mask=torch.tensor([[1, 0, 1, 1]]))
    assert "forward" not in vars(model.aesmamba.text_model)  # removed although the block raised
    with cached_text_encoder(model), pytest.raises(ValueError, match="nested"), cached_text_encoder(model):
        pass
    assert "forward" not in vars(model.aesmamba.text_model)
