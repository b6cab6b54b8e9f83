"""Fused CPU selective scan (numba) against the float64 sequential reference.

Small shapes only: the cost of these tests is numba's first compile (cached on disk afterwards).
"""

from __future__ import annotations

import pytest
import torch

from aesmamba_hf import selective_scan_cpu as sscpu
from aesmamba_hf.selective_scan import (
    cross_selective_scan,
    resolve_backend,
    selective_scan_fn,
    selective_scan_reference,
)

pytestmark = pytest.mark.skipif(not sscpu.NUMBA_AVAILABLE, reason="numba is not installed")

RTOL = 1e-5  # max |fused - reference| / max |reference|, fused in float32 vs a float64 oracle


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30)).item()


def _scan_inputs(batch, groups, d, n, length, *, grouped=True, softplus=True, decay_scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    chans = groups * d

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).requires_grad_()

    bc_shape = (batch, groups, n, length) if grouped else (batch, n, length)
    delta = torch.randn(batch, chans, length, generator=g, dtype=torch.float64) * 1.5
    return {
        "u": rnd(batch, chans, length),
        # without softplus Δ must stay positive (negative Δ makes the recurrence blow up in any precision)
        "delta": (delta if softplus else delta.abs() * 0.3).requires_grad_(),
        "A": (-(torch.rand(chans, n, generator=g, dtype=torch.float64) * 4 + 0.05) * decay_scale).requires_grad_(),
        "B": rnd(*bc_shape),
        "C": rnd(*bc_shape),
        "D": rnd(chans),
        "delta_bias": rnd(chans, scale=0.5) if softplus else (torch.rand(chans, generator=g, dtype=torch.float64)
                                                              * 0.1).requires_grad_(),
    }


def _run_scan(fn, inputs, *, softplus, last_state, use_d=True, use_bias=True, seed=1):
    kwargs = dict(D=inputs["D"] if use_d else None, delta_bias=inputs["delta_bias"] if use_bias else None,
                  delta_softplus=softplus, return_last_state=last_state)
    out = fn(inputs["u"], inputs["delta"], inputs["A"], inputs["B"], inputs["C"], **kwargs)
    y, last = out if last_state else (out, None)
    g = torch.Generator().manual_seed(seed)
    loss = (y * torch.randn(y.shape, generator=g, dtype=y.dtype)).sum()
    if last is not None:
        loss = loss + (last * torch.randn(last.shape, generator=g, dtype=last.dtype)).sum()
    names = [k for k in ("u", "delta", "A", "B", "C", "D", "delta_bias")
             if (k != "D" or use_d) and (k != "delta_bias" or use_bias)]
    grads = torch.autograd.grad(loss, [inputs[k] for k in names])
    return y, last, dict(zip(names, grads))


@pytest.fixture
def many_splits(monkeypatch):
    """Pretend there are many threads so that direction groups and channel ranges are split into units."""
    monkeypatch.setattr(sscpu, "_planning_threads", lambda: 8)


@pytest.mark.parametrize(
    "batch,groups,d,n,length,grouped,softplus,last_state,decay",
    [
        (2, 3, 5, 4, 37, True, True, True, 1.0),  # odd length, grouped B/C, last state
        (1, 1, 12, 16, 70, False, False, False, 1.0),  # (b, N, L) B/C, no softplus, > 2 chunks
        (2, 2, 9, 3, 33, True, True, False, 40.0),  # large decays: exp(Δ·A) underflows to 0
        (3, 4, 8, 5, 1, True, True, True, 1.0),  # a single step
    ],
)
def test_fused_scan_matches_reference(batch, groups, d, n, length, grouped, softplus, last_state, decay):
    inputs = _scan_inputs(batch, groups, d, n, length, grouped=grouped, softplus=softplus, decay_scale=decay)
    ref = _run_scan(selective_scan_reference, inputs, softplus=softplus, last_state=last_state)
    fused = _run_scan(sscpu.fused_selective_scan, inputs, softplus=softplus, last_state=last_state)
    assert fused[0].shape == ref[0].shape and fused[0].dtype == torch.float64
    assert _rel_err(fused[0], ref[0]) < RTOL
    if last_state:
        assert fused[1].shape == (batch, groups * d, n)
        assert _rel_err(fused[1], ref[1]) < RTOL
    for name, g_ref in ref[2].items():
        assert fused[2][name].shape == g_ref.shape, name
        assert _rel_err(fused[2][name], g_ref) < RTOL, name


def test_fused_scan_without_d_and_bias_and_with_split_units(many_splits):
    inputs = _scan_inputs(1, 2, 24, 4, 45)
    ref = _run_scan(selective_scan_reference, inputs, softplus=True, last_state=False, use_d=False, use_bias=False)
    fused = _run_scan(sscpu.fused_selective_scan, inputs, softplus=True, last_state=False, use_d=False,
                      use_bias=False)
    assert _rel_err(fused[0], ref[0]) < RTOL
    assert set(fused[2]) == {"u", "delta", "A", "B", "C"}
    for name, g_ref in ref[2].items():
        assert _rel_err(fused[2][name], g_ref) < RTOL, name


def test_fused_scan_gate_z_and_float32_dtype():
    inputs = _scan_inputs(2, 1, 6, 4, 20)
    z = torch.randn(2, 6, 20, dtype=torch.float64)
    args = [inputs[k].detach().float() for k in ("u", "delta", "A", "B", "C")]
    y = sscpu.fused_selective_scan(*args, D=inputs["D"].detach().float(), z=z.float(), delta_softplus=True)
    ref = selective_scan_reference(*[a.double() for a in args], D=inputs["D"].detach(), z=z, delta_softplus=True)
    assert y.dtype == torch.float32
    assert _rel_err(y, ref) < RTOL


def test_long_sequence_stays_accurate():
    """Float32 recurrence over a VMamba stage-1 length: the polynomial exp2 must not drift."""
    inputs = _scan_inputs(1, 1, 8, 16, 3136, seed=3)
    with torch.no_grad():
        args = [inputs[k] for k in ("u", "delta", "A", "B", "C")]
        ref = selective_scan_reference(*args, D=inputs["D"], delta_bias=inputs["delta_bias"] - 3,
                                       delta_softplus=True)
        y = sscpu.fused_selective_scan(*[a.float() for a in args], D=inputs["D"].float(),
                                       delta_bias=inputs["delta_bias"].float() - 3, delta_softplus=True)
    assert _rel_err(y, ref) < 1e-5


def test_inference_mode_keeps_nothing_for_backward(monkeypatch):
    inputs = _scan_inputs(1, 1, 8, 4, 40)
    saved = []
    real_forward = sscpu._Problem.forward

    def spy(self, save_ckpt):
        out = real_forward(self, save_ckpt)
        saved.append(out[1])  # the checkpoints
        return out

    monkeypatch.setattr(sscpu._Problem, "forward", spy)
    args = [inputs[k] for k in ("u", "delta", "A", "B", "C")]
    with torch.inference_mode():
        y = sscpu.fused_selective_scan(*args, delta_softplus=True)
    assert not y.requires_grad and saved[-1] is None
    with torch.no_grad():
        sscpu.fused_selective_scan(*args, delta_softplus=True)
    assert saved[-1] is None
    y = sscpu.fused_selective_scan(*args, delta_softplus=True)
    assert y.requires_grad and saved[-1] is not None
    cross = [t.detach().float() for t in _cross_inputs(1, 3, 4, d=8, n=4, rank=2)]
    with torch.inference_mode():
        assert not sscpu.fused_cross_selective_scan(*cross).requires_grad
    assert saved[-1] is None
    cross[0].requires_grad_()
    assert sscpu.fused_cross_selective_scan(*cross).requires_grad and saved[-1] is not None


def test_invalid_shapes_raise():
    u = torch.randn(1, 6, 10)
    with pytest.raises(ValueError, match="groups"):
        sscpu.fused_selective_scan(u, u, -torch.ones(6, 4), torch.randn(1, 4, 4, 10), torch.randn(1, 4, 4, 10))
    with pytest.raises(ValueError, match="u and delta"):
        sscpu.fused_selective_scan(u, u[:, :, :5], -torch.ones(6, 4), torch.randn(1, 4, 10), torch.randn(1, 4, 10))


# ------------------------------------------------------------------------------------------- 2-D op


def _cross_inputs(batch, height, width, d, n, rank, seed=0):
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).requires_grad_()

    return [rnd(batch, height, width, d), rnd(4, rank + 2 * n, d, scale=0.4), rnd(4, d, rank, scale=0.5),
            rnd(4, d, scale=0.5), rnd(4 * d, n, scale=0.7), rnd(4 * d)]


def _run_cross(fn, inputs, seed=1):
    y = fn(*inputs)
    weight = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed), dtype=y.dtype)
    return y, torch.autograd.grad((y * weight).sum(), inputs)


@pytest.mark.parametrize("batch,height,width,split", [(2, 5, 7, False), (1, 3, 11, True), (3, 7, 4, True)])
def test_fused_cross_scan_matches_reference(batch, height, width, split, monkeypatch):
    if split:
        monkeypatch.setattr(sscpu, "_planning_threads", lambda: 8)
    inputs = _cross_inputs(batch, height, width, d=16, n=4, rank=3)
    y_ref, g_ref = _run_cross(lambda *a: cross_selective_scan(*a, backend="reference"), inputs)
    y, grads = _run_cross(sscpu.fused_cross_selective_scan, inputs)
    assert y.shape == (batch, height, width, 16) and y.dtype == torch.float32
    assert _rel_err(y, y_ref) < RTOL
    names = ["x", "x_proj_weight", "dt_projs_weight", "dt_projs_bias", "A_logs", "Ds"]
    for name, g, gr in zip(names, grads, g_ref):
        assert g.shape == gr.shape and g.dtype == gr.dtype, name
        assert _rel_err(g, gr) < RTOL, name


def test_cross_scan_dispatch_and_inference():
    inputs = [t.detach().float() for t in _cross_inputs(1, 4, 6, d=8, n=4, rank=2)]
    with torch.inference_mode():
        fused = cross_selective_scan(*inputs, backend="fused")
        chunked = cross_selective_scan(*inputs, backend="chunked")
    assert _rel_err(fused, chunked) < 1e-5
    u = torch.randn(1, 8, 12)
    B = torch.randn(1, 4, 12)
    y = selective_scan_fn(u, u, -torch.ones(8, 4), B, B, backend="fused")
    assert torch.allclose(y, selective_scan_reference(u, u, -torch.ones(8, 4), B, B), atol=1e-5)


def test_resolve_backend_auto_is_fused_on_cpu():
    assert resolve_backend("auto", torch.device("cpu")) == "fused"


def test_work_units_cover_all_channels():
    for batch, chans, merge, threads in [(1, 192, True, 2), (8, 192, True, 2), (3, 1536, True, 2), (1, 5, False, 4),
                                         (2, 100, True, 16)]:
        kgroups, parts, width = sscpu._work_units(batch, chans, 4, merge, threads, 512)
        assert 4 % kgroups == 0 and width % 8 == 0
        assert (parts - 1) * width < chans <= parts * width and width <= 512
    assert sscpu._work_units(8, 192, 4, True, 2, 512)[0] == 1  # enough batch: no extra merge buffers
    assert sscpu._work_units(1, 192, 4, True, 2, 512)[0] == 2  # batch 1: two direction groups for two threads


# ------------------------------------------------------------------------------------ in the model


def test_vmamba_fused_backend_matches_reference_forward_and_grads():
    """A tiny VMamba (non-square input, odd map sizes) through SS2D's fused path vs the reference backend."""
    from aesmamba_hf import VMambaConfig, VMambaModel

    config = VMambaConfig(embed_dim=8, depths=[1, 1], d_state=4, scan_backend="reference")
    torch.manual_seed(0)
    model = VMambaModel(config).train()
    pixels = torch.randn(2, 3, 20, 28)

    def run(backend):
        model.set_scan_backend(backend)
        model.zero_grad(set_to_none=True)
        pooled = model(pixels).pooler_output
        (pooled * torch.linspace(-1, 1, pooled.shape[-1])).sum().backward()
        return pooled.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    want, want_grads = run("reference")
    got, got_grads = run("fused")
    assert _rel_err(got, want) < 1e-5
    for name, grad in want_grads.items():
        assert _rel_err(got_grads[name], grad) < 2e-5, name
    model.eval()
    with torch.inference_mode():
        assert _rel_err(model(pixels).pooler_output, want) < 1e-5


def test_torch_thread_count_survives_a_kernel_launch():
    """numba's omp layer shares libgomp with torch; a launch must not leave torch with more threads."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        u = torch.randn(1, 16, 40)
        B = torch.randn(1, 4, 40)
        sscpu.fused_selective_scan(u, u.abs(), -torch.ones(16, 4), B, B, delta_softplus=True)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_fused_backend_under_gradient_checkpointing():
    from aesmamba_hf import VMambaConfig, VMambaModel

    torch.manual_seed(0)
    model = VMambaModel(VMambaConfig(embed_dim=8, depths=[1, 1], d_state=4, scan_backend="fused")).train()
    pixels = torch.randn(2, 3, 16, 24)

    def grads():
        model.zero_grad(set_to_none=True)
        model(pixels).pooler_output.square().sum().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    plain = grads()
    (getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable)()
    checkpointed = grads()
    for name, grad in plain.items():
        assert torch.allclose(checkpointed[name], grad, rtol=1e-5, atol=1e-7), name


def test_launch_retries_once_without_cache():
    """A numba cache that cannot be read or written must not break the scan; real errors still raise."""

    class FakeKernel:
        def __init__(self, failures):
            self._cache = object()  # stands for an on-disk FunctionCache
            self.failures, self.calls = failures, 0

        def __call__(self, *args):
            self.calls += 1
            if self.calls <= self.failures:
                raise ModuleNotFoundError("No module named '<dynamic>'")

    flaky = FakeKernel(failures=1)
    with pytest.warns(RuntimeWarning, match="cache disabled"):
        sscpu._launch(flaky)
    assert flaky.calls == 2 and isinstance(flaky._cache, sscpu._null_cache_type())
    broken = FakeKernel(failures=5)
    with pytest.warns(RuntimeWarning), pytest.raises(ModuleNotFoundError):
        sscpu._launch(broken)
    assert broken.calls == 2
