"""Pure-PyTorch scan backends and the dispatcher, against the float64 sequential reference."""

from __future__ import annotations

import math

import pytest
import torch

from aesmamba_hf import selective_scan as ss


def random_inputs(batch, groups, d, n, length, decay_scale=1.0, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=gen, dtype=dtype)

    channels = groups * d
    return dict(
        u=r(batch, channels, length),
        delta=r(batch, channels, length),
        A=-torch.exp(r(channels, n)) * decay_scale,
        B=r(batch, groups, n, length),
        C=r(batch, groups, n, length),
        D=r(channels),
        z=r(batch, channels, length),
        delta_bias=r(channels),
    )


@pytest.mark.parametrize(
    "batch,groups,d,n,length,decay,chunk",
    [(2, 4, 3, 5, 37, 1.0, 8), (1, 1, 6, 4, 1, 1.0, 32), (2, 2, 3, 2, 50, 300.0, 16), (1, 4, 2, 3, 33, 1e-3, 7)],
)
def test_chunked_matches_reference_forward_and_gradients(batch, groups, d, n, length, decay, chunk):
    inputs = random_inputs(batch, groups, d, n, length, decay)
    names = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias"]
    grads = {}
    for backend in ("reference", "chunked"):
        leaves = {k: v.clone().requires_grad_(True) for k, v in inputs.items()}
        kw = dict(delta_softplus=True, return_last_state=True)
        if backend == "chunked":
            y, last = ss.selective_scan_chunked(*[leaves[k] for k in names[:5]], leaves["D"], leaves["z"],
                                                leaves["delta_bias"], chunk_size=chunk, **kw)
        else:
            y, last = ss.selective_scan_fn(*[leaves[k] for k in names[:5]], leaves["D"], leaves["z"],
                                           leaves["delta_bias"], backend="reference", **kw)
        assert torch.isfinite(y).all() and torch.isfinite(last).all()
        (y.square().sum() + last.sum()).backward()
        grads[backend] = (y.detach(), last.detach(), {k: leaves[k].grad for k in names})
    y_ref, last_ref, g_ref = grads["reference"]
    y_chk, last_chk, g_chk = grads["chunked"]
    torch.testing.assert_close(y_chk, y_ref, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(last_chk, last_ref, rtol=1e-9, atol=1e-10)
    for k in names:
        torch.testing.assert_close(g_chk[k], g_ref[k], rtol=1e-8, atol=1e-9, msg=k)


@pytest.mark.parametrize(
    "batch,groups,d,n,length,decay",
    [(2, 4, 3, 5, 37, 1.0), (1, 1, 6, 4, 1, 1.0), (2, 2, 3, 2, 50, 300.0), (1, 4, 2, 3, 33, 1e-3), (1, 2, 2, 3, 36, 1.0)],
)
def test_unrolled_matches_reference_forward_and_gradients(batch, groups, d, n, length, decay):
    """Chunks of ⌈√L⌉ steps, L a square or not (padded), one step, strong and weak decay."""
    inputs = random_inputs(batch, groups, d, n, length, decay)
    results = {}
    for backend in ("reference", "unrolled"):
        leaves = {k: v.clone().requires_grad_(True) for k, v in inputs.items()}
        y, last = ss.selective_scan_fn(*leaves.values(), delta_softplus=True, return_last_state=True, backend=backend)
        assert torch.isfinite(y).all() and torch.isfinite(last).all()
        (y.square().sum() + last.sum()).backward()
        results[backend] = (y.detach(), last.detach(), {k: leaf.grad for k, leaf in leaves.items()})
    (y_ref, last_ref, g_ref), (y_unr, last_unr, g_unr) = results["reference"], results["unrolled"]
    torch.testing.assert_close(y_unr, y_ref, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(last_unr, last_ref, rtol=1e-9, atol=1e-10)
    for k in inputs:
        torch.testing.assert_close(g_unr[k], g_ref[k], rtol=1e-8, atol=1e-9, msg=k)


def test_ungrouped_bc_equals_one_group():
    inputs = random_inputs(1, 1, 4, 3, 10)
    a = ss.selective_scan_reference(inputs["u"], inputs["delta"], inputs["A"], inputs["B"][:, 0], inputs["C"][:, 0])
    b = ss.selective_scan_reference(inputs["u"], inputs["delta"], inputs["A"], inputs["B"], inputs["C"])
    torch.testing.assert_close(a, b)


def test_recurrence_by_hand_single_channel():
    """y_t for one channel, one state: h_t = exp(Δ a) h + Δ b u, y = c h + d u."""
    u = torch.tensor([[[1.0, 2.0, -1.0]]], dtype=torch.float64)
    delta = torch.tensor([[[0.5, 1.0, 2.0]]], dtype=torch.float64)
    A = torch.tensor([[-0.7]], dtype=torch.float64)
    B = torch.tensor([[[0.3, -0.2, 1.1]]], dtype=torch.float64)
    C = torch.tensor([[[2.0, 0.5, -1.0]]], dtype=torch.float64)
    D = torch.tensor([0.25], dtype=torch.float64)
    h, expected = 0.0, []
    for t in range(3):
        dt = delta[0, 0, t].item()
        h = torch.exp(torch.tensor(dt * -0.7)).item() * h + dt * B[0, 0, t].item() * u[0, 0, t].item()
        expected.append(C[0, 0, t].item() * h + 0.25 * u[0, 0, t].item())
    for backend in ("reference", "chunked", "unrolled"):
        y = ss.selective_scan_fn(u, delta, A, B, C, D, backend=backend)
        torch.testing.assert_close(y[0, 0], torch.tensor(expected, dtype=torch.float64))



def test_recurrence_by_hand_bias_softplus_gate_groups_and_last_state():
    """Plain-float recurrence with every option: Δ = softplus(δ + bias), channel c reads B/C group c // 2
    (contiguous channel blocks, as in mamba_ssm), y = (C·h + D u) · silu(z), last state h_L."""
    channels, states, length = 4, 2, 3
    u = [[0.5 * (c + 1) * (-1) ** t for t in range(length)] for c in range(channels)]
    delta = [[0.3 * t - 0.4 * c for t in range(length)] for c in range(channels)]
    bias = [0.1, -0.2, 0.3, 0.0]
    A = [[-0.5 - 0.25 * n - 0.1 * c for n in range(states)] for c in range(channels)]
    B = [[[0.2 * (g + 1) + 0.1 * n - 0.15 * t for t in range(length)] for n in range(states)] for g in range(2)]
    C = [[[1.0 - 0.3 * g + 0.2 * n * t for t in range(length)] for n in range(states)] for g in range(2)]
    D = [0.5, -1.0, 0.25, 2.0]
    z = [[0.7 - 0.5 * c + 0.4 * t for t in range(length)] for c in range(channels)]

    expected_y, expected_h = [], []
    for c in range(channels):
        g, h, row = c // 2, [0.0] * states, []
        for t in range(length):
            dt = math.log1p(math.exp(delta[c][t] + bias[c]))
            h = [math.exp(dt * A[c][n]) * h[n] + dt * B[g][n][t] * u[c][t] for n in range(states)]
            y = sum(C[g][n][t] * h[n] for n in range(states)) + D[c] * u[c][t]
            row.append(y * z[c][t] / (1 + math.exp(-z[c][t])))
        expected_y.append(row)
        expected_h.append(h)

    def t64(x):
        return torch.tensor(x, dtype=torch.float64)

    args = (t64([u]), t64([delta]), t64(A), t64([B]), t64([C]))
    # the fused kernel is checked against the reference in test_selective_scan_fused.py
    for backend in ("reference", "chunked", "unrolled"):
        y, last = ss.selective_scan_fn(*args, t64(D), t64([z]), t64(bias), delta_softplus=True,
                                       return_last_state=True, backend=backend)
        torch.testing.assert_close(y[0], t64(expected_y), rtol=1e-12, atol=1e-12, msg=backend)
        torch.testing.assert_close(last[0], t64(expected_h), rtol=1e-12, atol=1e-12, msg=backend)

def test_float32_inputs_keep_dtype_and_cross_scan_round_trip():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)  # (b, D, H, W)
    xs = ss.cross_scan(x)
    assert xs.shape == (2, 4, 3, 20)
    merged = ss.cross_merge(xs, 4, 5)  # each direction brought back to row-major: 4 × x
    torch.testing.assert_close(merged, 4 * x.flatten(2))
    inputs = random_inputs(1, 1, 2, 2, 5, dtype=torch.float32)
    y = ss.selective_scan_fn(inputs["u"], inputs["delta"], inputs["A"], inputs["B"], inputs["C"], backend="chunked")
    assert y.dtype == torch.float32


def test_backend_resolution_and_errors():
    assert ss.resolve_backend("reference", torch.device("cpu")) == "reference"
    cpu_auto = ss.resolve_backend("auto", torch.device("cpu"))
    assert cpu_auto == ("fused" if ss.fused_backend_available() else "unrolled")
    if not ss.MAMBA_SSM_AVAILABLE and not ss.triton_importable():  # triton first on CUDA (issue 22)
        assert ss.resolve_backend("auto", torch.device("cuda")) == "chunked"
    with pytest.raises(ValueError, match="unknown scan backend"):
        ss.resolve_backend("magic", torch.device("cpu"))
    inputs = random_inputs(1, 1, 2, 2, 4, dtype=torch.float32)
    with pytest.raises(RuntimeError, match="mamba"):
        ss.selective_scan_fn(inputs["u"], inputs["delta"], inputs["A"], inputs["B"], inputs["C"], backend="mamba_ssm")
    with pytest.raises(ValueError, match="groups"):
        ss.selective_scan_reference(inputs["u"], inputs["delta"], inputs["A"], torch.randn(1, 3, 2, 4),
                                    torch.randn(1, 3, 2, 4))
