"""VMamba v0 checked against an independent per-position implementation of its 2-D selective scan.

The oracle below never uses the package's cross_scan/cross_merge: it walks each of the four scan orders
position by position (row-major, column-major, and both reversed) on a non-square map, so a transposed
or flipped direction would show up as a mismatch.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from aesmamba_hf import VMambaConfig, VMambaModel, modeling_vmamba
from aesmamba_hf.modeling_vmamba import SS2D
from aesmamba_hf.selective_scan import SCAN_BACKENDS


def scan_orders(height: int, width: int) -> list[list[tuple[int, int]]]:
    row_major = [(h, w) for h in range(height) for w in range(width)]
    col_major = [(h, w) for w in range(width) for h in range(height)]
    return [row_major, col_major, row_major[::-1], col_major[::-1]]


def ss2d_core_oracle(x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds):
    """x (b, H, W, D) float64 → (b, H, W, D): cross scan → selective scan → cross merge, one position
    at a time."""
    b, height, width, d = x.shape
    k_dirs, _, rank = dt_projs_weight.shape
    n_state = A_logs.shape[1]
    A = -torch.exp(A_logs).view(k_dirs, d, n_state)
    D = Ds.view(k_dirs, d)
    out = torch.zeros_like(x)
    for k, order in enumerate(scan_orders(height, width)):
        h_state = torch.zeros(b, d, n_state, dtype=x.dtype)
        for hh, ww in order:
            u = x[:, hh, ww]  # (b, D)
            proj = u @ x_proj_weight[k].T  # (b, R + 2N): [dt | B | C]
            dt_low, B, C = proj[:, :rank], proj[:, rank : rank + n_state], proj[:, rank + n_state :]
            delta = F.softplus(dt_low @ dt_projs_weight[k].T + dt_projs_bias[k])  # (b, D)
            h_state = torch.exp(delta[..., None] * A[k]) * h_state + (delta * u)[..., None] * B[:, None, :]
            out[:, hh, ww] += (h_state * C[:, None, :]).sum(-1) + D[k] * u
    return out


def ss2d_oracle(module: SS2D, x: torch.Tensor) -> torch.Tensor:
    xz = x @ module.in_proj.weight.T
    xi, z = xz.chunk(2, dim=-1)
    conv = F.conv2d(xi.permute(0, 3, 1, 2), module.conv2d.weight, module.conv2d.bias, padding=1, groups=xi.shape[-1])
    xi = F.silu(conv).permute(0, 2, 3, 1)
    y = ss2d_core_oracle(xi, module.x_proj_weight, module.dt_projs_weight, module.dt_projs_bias, module.A_logs, module.Ds)
    y = F.layer_norm(y, y.shape[-1:], module.out_norm.weight, module.out_norm.bias, module.out_norm.eps)
    return (y * F.silu(z)) @ module.out_proj.weight.T


def vmamba_oracle(model: VMambaModel, pixel_values: torch.Tensor) -> torch.Tensor:
    pe = model.patch_embed
    x = F.conv2d(pixel_values, pe.proj.weight, pe.proj.bias, stride=pe.proj.stride).permute(0, 2, 3, 1)
    x = F.layer_norm(x, x.shape[-1:], pe.norm.weight, pe.norm.bias, pe.norm.eps)
    for stage in model.layers:
        for block in stage.blocks:
            normed = F.layer_norm(x, x.shape[-1:], block.norm.weight, block.norm.bias, block.norm.eps)
            x = x + ss2d_oracle(block.ss2d, normed)
        if stage.downsample is not None:
            ds = stage.downsample
            # [x0, x1, x2, x3] = (even row, even col), (odd row, even col), (even row, odd col), (odd, odd)
            merged = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
            merged = F.layer_norm(merged, merged.shape[-1:], ds.norm.weight, ds.norm.bias, ds.norm.eps)
            x = merged @ ds.reduction.weight.T
    tokens = x.flatten(1, 2)
    tokens = F.layer_norm(tokens, tokens.shape[-1:], model.norm.weight, model.norm.bias, model.norm.eps)
    return tokens.mean(1)


def tiny_config(**kw) -> VMambaConfig:
    return VMambaConfig(embed_dim=4, depths=[1, 1], d_state=3, **kw)


def randomize_(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial values everywhere (LayerNorm affine, Ds, biases) so every parameter matters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("A_logs"):
                p.copy_(torch.rand(p.shape, generator=gen) * 2 - 1)
            else:
                p.copy_(p + 0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))


@pytest.mark.parametrize("backend", ["reference", "chunked"])
def test_ss2d_matches_independent_oracle_non_square(backend):
    model = VMambaModel(tiny_config(scan_backend=backend)).double()
    randomize_(model)
    ss2d = model.layers[0].blocks[0].ss2d
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64)  # H=3 ≠ W=5
    got = ss2d(x)
    want = ss2d_oracle(ss2d, x)
    assert got.shape == (2, 3, 5, 4)
    torch.testing.assert_close(got, want.to(got.dtype), rtol=1e-5, atol=1e-6)


def test_vmamba_matches_independent_oracle_non_square():
    model = VMambaModel(tiny_config(scan_backend="reference")).double().eval()
    randomize_(model, seed=1)
    pixels = torch.randn(2, 3, 24, 40, dtype=torch.float64)  # 6×10 tokens, then 3×5
    out = model(pixels)
    assert out.last_hidden_state.shape == (2, 3, 5, 8)
    assert out.pooler_output.shape == (2, 8)
    torch.testing.assert_close(out.pooler_output, vmamba_oracle(model, pixels).to(out.pooler_output.dtype),
                               rtol=1e-5, atol=1e-6)


def test_scan_order_is_pinned():
    """Transposing the input must change the result: the column scan is not the row scan."""
    model = VMambaModel(tiny_config(scan_backend="reference")).double()
    randomize_(model, seed=2)
    ss2d = model.layers[0].blocks[0].ss2d
    x = torch.randn(1, 4, 4, 4, dtype=torch.float64)
    assert not torch.allclose(ss2d(x.transpose(1, 2)).transpose(1, 2), ss2d(x))


def test_official_tiny_geometry_and_parameter_count():
    config = VMambaConfig()
    assert config.dims == [96, 192, 384, 768]
    assert [config.stage_dt_rank(c) for c in config.dims] == [6, 12, 24, 48]
    with torch.device("meta"):
        model = VMambaModel(config)
    assert sum(p.numel() for p in model.parameters()) == 22_124_448
    ss2d = model.layers[0].blocks[0].ss2d
    assert tuple(ss2d.x_proj_weight.shape) == (4, 38, 192)
    assert tuple(ss2d.A_logs.shape) == (768, 16)


def test_initialisation_follows_s6():
    config = tiny_config()
    model = VMambaModel(config)
    ss2d = model.layers[1].blocks[0].ss2d
    expected_a = torch.log(torch.arange(1, config.d_state + 1, dtype=torch.float32)).expand_as(ss2d.A_logs)
    torch.testing.assert_close(ss2d.A_logs.detach(), expected_a)
    torch.testing.assert_close(ss2d.Ds.detach(), torch.ones_like(ss2d.Ds))
    dt = F.softplus(ss2d.dt_projs_bias.detach())
    assert dt.min() >= config.dt_init_floor * 0.999 and dt.max() <= config.dt_max * 1.001
    bound = ss2d.dt_rank**-0.5
    assert ss2d.dt_projs_weight.abs().max() <= bound


def test_from_pretrained_reinitialises_nothing_it_loads(tmp_path):
    """v5 builds on the meta device: loaded weights must survive and no parameter may be garbage."""
    model = VMambaModel(tiny_config(scan_backend="chunked")).eval()
    randomize_(model, seed=3)
    model.save_pretrained(tmp_path)
    loaded = VMambaModel.from_pretrained(tmp_path)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        torch.testing.assert_close(a, b, msg=name)
    x = torch.randn(1, 3, 16, 16)
    torch.testing.assert_close(loaded(x).pooler_output, model(x).pooler_output)


def test_drop_path_and_gradient_checkpointing():
    model = VMambaModel(tiny_config(scan_backend="chunked", drop_path_rate=0.5))
    rates = [b.drop_path.drop_prob for stage in model.layers for b in stage.blocks]
    assert rates == [0.0, 0.5]
    x = torch.randn(2, 3, 16, 16)
    model.eval()
    ref = model(x).pooler_output
    model.train()
    model.gradient_checkpointing_enable()
    torch.manual_seed(0)
    out = model(x).pooler_output
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    model.eval()
    torch.testing.assert_close(model(x).pooler_output, ref)


def test_scan_backend_switch_is_validated():
    model = VMambaModel(tiny_config())
    with pytest.raises(ValueError, match="scan_backend"):
        model.set_scan_backend("cuda-magic")
    for backend in ("reference", "chunked"):
        model.set_scan_backend(backend)
        assert all(b.ss2d.scan_backend == backend for stage in model.layers for b in stage.blocks)
    assert "fused" in SCAN_BACKENDS and math.isfinite(model(torch.randn(1, 3, 8, 8)).pooler_output.sum().item())


def test_scan_backend_choice_is_run_time_state_only(tmp_path, monkeypatch):
    """set_scan_backend never writes the config; without a run-time choice the config's field is read per call."""
    model = VMambaModel(tiny_config(scan_backend="chunked")).eval()
    assert model.get_scan_backend() is None
    model.set_scan_backend("reference")
    assert model.config.scan_backend == "chunked" and model.get_scan_backend() == "reference"
    model.save_pretrained(tmp_path)
    assert VMambaConfig.from_pretrained(tmp_path).scan_backend == "chunked"

    calls = []
    original = modeling_vmamba.cross_selective_scan

    def spy(*args, backend, **kwargs):
        calls.append(backend)
        return original(*args, backend=backend, **kwargs)

    monkeypatch.setattr(modeling_vmamba, "cross_selective_scan", spy)
    x = torch.randn(1, 3, 8, 8)
    model(x)
    model.set_scan_backend(None)  # back to the config's field, read at call time
    model(x)
    model.config.scan_backend = "reference"
    model(x)
    assert calls == ["reference"] * 2 + ["chunked"] * 2 + ["reference"] * 2  # two SS2D blocks per call


def test_output_flags_from_arguments_and_config():
    model = VMambaModel(tiny_config(scan_backend="chunked")).eval()
    x = torch.randn(2, 3, 16, 24)
    out = model(x, output_hidden_states=True)
    # the patch embedding, then each stage after its patch merging (channels-last); the last is last_hidden_state
    assert [tuple(h.shape) for h in out.hidden_states] == [(2, 4, 6, 4), (2, 2, 3, 8), (2, 2, 3, 8)]
    torch.testing.assert_close(out.hidden_states[-1], out.last_hidden_state)
    assert model(x).hidden_states is None
    picked = model(x, output_hidden_states=[0, -1]).hidden_states
    assert picked[1] is None
    torch.testing.assert_close(picked[0], out.hidden_states[0])
    with pytest.raises(IndexError):
        model(x, output_hidden_states=[3])

    as_tuple = model(x, return_dict=False, output_hidden_states=True)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 3  # last_hidden_state, pooler_output, hidden_states
    torch.testing.assert_close(as_tuple[1], out.pooler_output)
    model.config.return_dict = False
    model.config.output_hidden_states = True
    from_config = model(x)
    assert isinstance(from_config, tuple) and len(from_config[2]) == 3
    assert model(x, return_dict=True, output_hidden_states=False).hidden_states is None


def test_patch_embedding_is_the_input_embedding_for_peft_hooks():
    model = VMambaModel(tiny_config(scan_backend="chunked"))
    assert model.get_input_embeddings() is model.patch_embed
    model.requires_grad_(False)
    model.enable_input_require_grads()
    assert model(torch.randn(1, 3, 8, 8)).pooler_output.requires_grad  # a frozen encoder still passes gradients
