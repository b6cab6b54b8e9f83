"""Selective scan (Mamba S6) and the VMamba 2-D cross scan, with interchangeable backends.

One signature (mamba-ssm's ``selective_scan_fn``, B/C grouped per scan direction), several backends:

* ``"reference"`` – sequential loop over time; the test oracle (float64-capable, slow).
* ``"chunked"``   – pure PyTorch, chunk-parallel in log space; safe for any decay (no overflow, no NaN).
* ``"unrolled"``  – pure PyTorch, all chunks of ⌈√L⌉ steps scanned at once, step by step; safe for any decay;
  a few times faster than ``"chunked"`` on CPU and a small graph: what ONNX export traces, and the CPU
  fallback without numba.
* ``"mamba_ssm"`` – the CUDA kernel of ``mamba-ssm``, imported guardedly (it does not import without
  its CUDA extension, and that must never break ``import aesmamba_hf``).
* ``"fused"``     – the fused CPU kernel (numba) in :mod:`selective_scan_cpu`, forward and backward.
* ``"triton"``    – the Triton kernels in :mod:`selective_scan_triton` (CUDA; CPU tensors too under
  ``TRITON_INTERPRET=1``, Triton's interpreter, for tests), forward and backward.
* ``"auto"``      – picked per call by :func:`resolve_backend`: on CUDA triton when importable, else mamba_ssm
  when importable, else chunked; on CPU the fused op (``aesmamba::…``, registered in :mod:`selective_scan_ops`,
  so ``torch.compile`` and ``torch.export`` trace it) when numba imports; the pure-tensor unrolled scan under
  ONNX export or without numba.

Shapes (grouped B/C as used by VMamba, one group per scan direction)::

    u, delta : (batch, G*D, L)        A : (G*D, N)
    B, C     : (batch, G, N, L)  or (batch, N, L) (one group)
    D, delta_bias : (G*D,)            out : (batch, G*D, L)

Channel ``c`` belongs to group ``c // D`` (group-major), as in mamba-ssm.

This module only imports from its own folder so that remote-code checkpoints can carry it flat.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Optional

import torch
import torch.nn.functional as F

# registers the aesmamba:: ops at import (loading an exported program needs them); written as `from .module import`
# so that remote-code export finds the file
from .selective_scan_ops import NAMESPACE as _OPS_NAMESPACE  # noqa: F401

SCAN_BACKENDS = ("auto", "reference", "chunked", "unrolled", "fused", "mamba_ssm", "triton")

try:  # optional CUDA fast path; any failure (missing triton, missing extension) just disables it
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn as _mamba_selective_scan_fn

    MAMBA_SSM_AVAILABLE = True
except Exception:  # noqa: BLE001 - mamba-ssm raises several kinds of errors without CUDA
    _mamba_selective_scan_fn = None
    MAMBA_SSM_AVAILABLE = False

# --- Triton backend (issue 22) ---------------------------------------------------------------------
# Installed-or-not only: the module imports triton itself at the first scan (importing it costs ~1 s).
from .selective_scan_triton import TRITON_AVAILABLE, triton_importable  # noqa: E402

# --- end Triton backend ----------------------------------------------------------------------------


def _expand_groups(BC: torch.Tensor, channels: int) -> torch.Tensor:
    """(b, G, N, L) or (b, N, L) -> (b, channels, N, L), group-major."""
    if BC.dim() == 3:
        BC = BC.unsqueeze(1)
    groups = BC.shape[1]
    if channels % groups != 0:
        raise ValueError(f"{channels} channels cannot be split into {groups} groups of B/C")
    return BC.repeat_interleave(channels // groups, dim=1)


def match_groups(B: torch.Tensor, C: torch.Tensor, chans: int) -> tuple[torch.Tensor, torch.Tensor]:
    """B, C → (batch, G, N, L) with the same G (a common multiple of theirs), which must divide ``chans``."""
    B = B.unsqueeze(1) if B.dim() == 3 else B
    C = C.unsqueeze(1) if C.dim() == 3 else C
    if B.dim() != 4 or C.dim() != 4:
        raise ValueError(f"selective scan: B and C must be (batch, G, N, L) or (batch, N, L); got "
                         f"{tuple(B.shape)} and {tuple(C.shape)}")
    groups = math.lcm(B.shape[1], C.shape[1])
    if chans % groups != 0:
        raise ValueError(f"selective scan: {chans} channels cannot be split into {groups} groups of B/C")
    return B.repeat_interleave(groups // B.shape[1], dim=1), C.repeat_interleave(groups // C.shape[1], dim=1)


def check_scan_operands(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                        C: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Clear errors for inconsistent 1-D scan operands (before a kernel runs); returns B, C grouped alike
    (:func:`match_groups`). Shared by the kernel backends (fused, triton)."""
    if u.dim() != 3 or delta.shape != u.shape:
        raise ValueError(f"selective scan: u and delta must both be (batch, channels, L); got {tuple(u.shape)} "
                         f"and {tuple(delta.shape)}")
    if A.dim() != 2 or A.shape[0] != u.shape[1] or A.is_complex():
        raise ValueError(f"selective scan: A must be real (channels={u.shape[1]}, N); got {tuple(A.shape)}")
    return match_groups(B, C, u.shape[1])


def check_cross_shapes(x, x_proj_weight, dt_projs_weight, A_logs) -> None:
    """Clear errors for inconsistent SS2D parameter shapes (before any kernel runs)."""
    if x.dim() != 4:
        raise ValueError(f"cross selective scan: x must be (batch, H, W, D), got {tuple(x.shape)}")
    n_dirs, n_proj, chans = x_proj_weight.shape
    rank, n_state = dt_projs_weight.shape[2], A_logs.shape[1]
    if n_dirs != 4:
        raise ValueError(f"cross selective scan: expected 4 scan directions, x_proj_weight has {n_dirs}")
    if (chans != x.shape[3] or n_proj != rank + 2 * n_state or rank < 1
            or tuple(dt_projs_weight.shape[:2]) != (n_dirs, chans)):
        raise ValueError(f"cross selective scan: inconsistent shapes x {tuple(x.shape)}, x_proj_weight "
                         f"{tuple(x_proj_weight.shape)}, dt_projs_weight {tuple(dt_projs_weight.shape)}, "
                         f"A_logs {tuple(A_logs.shape)}")


def finish_kernel_output(y: torch.Tensor, last: torch.Tensor, u: torch.Tensor, z: Optional[torch.Tensor],
                         return_last_state: bool):
    """Common tail of the kernel backends (fused, triton; their kernels already add D·u): y in u's dtype, the
    SiLU(z) gate, and the last state in u's dtype promoted to at least float32."""
    y = y.to(u.dtype)
    if z is not None:
        y = y * F.silu(z.to(y.dtype))
    if return_last_state:
        return y, last.to(torch.promote_types(u.dtype, torch.float32))
    return y


def _prepare_grouped(u, delta, A, B, C, delta_bias, delta_softplus):
    """Common front of the PyTorch scans: compute dtype, Δ = softplus(Δ + bias), B/C as (b, G, N, L)."""
    compute = torch.promote_types(u.dtype, torch.float32)
    u, delta, A, B, C = (t.to(compute) for t in (u, delta, A, B, C))
    if delta_bias is not None:
        delta = delta + delta_bias.to(compute)[None, :, None]
    if delta_softplus:
        delta = F.softplus(delta)
    return u, delta, A, (B.unsqueeze(1) if B.dim() == 3 else B), (C.unsqueeze(1) if C.dim() == 3 else C)


def _prepare(u, delta, A, B, C, delta_bias, delta_softplus):
    """:func:`_prepare_grouped` with B/C repeated per channel: (b, c, N, L)."""
    u, delta, A, B, C = _prepare_grouped(u, delta, A, B, C, delta_bias, delta_softplus)
    channels = u.shape[1]
    return u, delta, A, _expand_groups(B, channels), _expand_groups(C, channels)


def _finish(y, u, D, z, dtype_in, h, return_last_state):
    """Common tail: skip connection D·u, optional SiLU(z) gate, cast back."""
    if D is not None:
        y = y + u * D.to(y.dtype)[None, :, None]
    if z is not None:
        y = y * F.silu(z.to(y.dtype))
    y = y.to(dtype_in)
    return (y, h) if return_last_state else y


def selective_scan_reference(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: Optional[torch.Tensor] = None,
    z: Optional[torch.Tensor] = None,
    delta_bias: Optional[torch.Tensor] = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
):
    """Sequential recurrence h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t u_t, y_t = C_t·h_t + D u_t.

    Computes in the dtype of ``u`` promoted to at least float32 (pass float64 for an oracle).
    """
    dtype_in = u.dtype
    u, delta, A, Bx, Cx = _prepare(u, delta, A, B, C, delta_bias, delta_softplus)  # Bx, Cx: (b, c, N, L)
    batch, channels, length = u.shape
    h = u.new_zeros(batch, channels, A.shape[1])
    ys = []
    for t in range(length):
        dA = torch.exp(delta[:, :, t, None] * A)  # (b, c, N)
        h = dA * h + (delta[:, :, t] * u[:, :, t])[..., None] * Bx[:, :, :, t]
        ys.append((h * Cx[:, :, :, t]).sum(-1))
    return _finish(torch.stack(ys, dim=-1), u, D, z, dtype_in, h, return_last_state)


def selective_scan_chunked(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: Optional[torch.Tensor] = None,
    z: Optional[torch.Tensor] = None,
    delta_bias: Optional[torch.Tensor] = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    chunk_size: int = 32,
):
    """Chunk-parallel scan in log space.

    Inside a chunk, h_t = Σ_{s≤t} exp(S_t − S_s) Δ_s B_s u_s + exp(S_t − S_{-1}) h_{-1}, with S the running
    sum of Δ·A. Only differences S_t − S_s with s ≤ t are exponentiated; they are ≤ 0 (A < 0, Δ ≥ 0), so
    nothing overflows whatever the decay, unlike the cumprod/divide formulations.
    """
    dtype_in = u.dtype
    u, delta, A, Bx, Cx = _prepare(u, delta, A, B, C, delta_bias, delta_softplus)
    batch, channels, length = u.shape
    h = u.new_zeros(batch, channels, A.shape[1])
    ys = []
    for start in range(0, length, chunk_size):
        stop = min(start + chunk_size, length)
        t_len = stop - start
        d_c = delta[:, :, start:stop]  # (b, c, T)
        S = torch.cumsum(d_c[:, :, None, :] * A[None, :, :, None], dim=-1)  # (b, c, N, T)
        diff = S[..., :, None] - S[..., None, :]  # (b, c, N, T_t, T_s)
        causal = torch.ones(t_len, t_len, dtype=torch.bool, device=u.device).tril()
        weights = torch.exp(diff.masked_fill(~causal, float("-inf")))
        inputs = (d_c * u[:, :, start:stop])[:, :, None, :] * Bx[..., start:stop]  # (b, c, N, T)
        states = torch.einsum("bcnts,bcns->bcnt", weights, inputs) + torch.exp(S) * h[..., None]
        ys.append(torch.einsum("bcnt,bcnt->bct", states, Cx[..., start:stop]))
        h = states[..., -1]
    return _finish(torch.cat(ys, dim=-1), u, D, z, dtype_in, h, return_last_state)


def _steps(t: torch.Tensor, chunks: int, steps: int, state_axis: bool) -> list[torch.Tensor]:
    """(b, G, X, L) → ``steps`` tensors shaped to broadcast against the state (b, G, d, chunks, N): position
    ``k·steps + s`` is chunk k, step s. ``state_axis``: X is the state axis N (B, C), else the channels d."""
    b, k, x, length = t.shape
    pad = chunks * steps - length
    if pad:  # padded positions carry Δ = 0 (no decay, no input) and come after every real one
        t = F.pad(t, (0, pad))
    t = t.reshape(b, k, x, chunks, steps)
    t = t.permute(0, 1, 3, 2, 4).unsqueeze(2) if state_axis else t.unsqueeze(4)  # (b,G,1,n,N,T) / (b,G,d,n,1,T)
    return list(t.unbind(-1))


def selective_scan_unrolled(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: Optional[torch.Tensor] = None,
    z: Optional[torch.Tensor] = None,
    delta_bias: Optional[torch.Tensor] = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
):
    """All chunks at once, one step at a time: the L positions split into ``n`` chunks of T = ⌈√L⌉ steps,

    1. every chunk scanned from a zero state (all chunks in parallel): h_t = exp(Δ_t·A)·h_{t-1} + Δ_t·u_t·B_t;
    2. the state entering each chunk, sequentially over the chunks: H_{k+1} = exp(A·ΣΔ_k)·H_k + h_end,k;
    3. every position corrected by its chunk's entering state: y_t = C_t·(h_t + exp(A·cumΔ_t)·H_k).

    The sequential recurrence regrouped (every exponent ≤ 0: nothing overflows whatever the decay), ~2·√L
    element-wise steps on (b, G, d, n, N) tensors with B/C kept per group: a small, fast graph in eager mode and
    in ONNX (what :func:`resolve_backend` picks under ONNX export). Batch stays a free axis; L is fixed by tracing.
    """
    dtype_in = u.dtype
    u, delta, A, B, C = _prepare_grouped(u, delta, A, B, C, delta_bias, delta_softplus)
    batch, channels, length = u.shape
    B, C = match_groups(B, C, channels)
    groups = B.shape[1]
    d, n_state = channels // groups, A.shape[1]
    steps = math.isqrt(length - 1) + 1 if length > 1 else 1
    chunks = -(-length // steps)
    u4, delta4 = u.view(batch, groups, d, length), delta.view(batch, groups, d, length)
    A5 = A.view(1, groups, d, 1, n_state)  # broadcast over batch and chunks
    ds, dus = _steps(delta4, chunks, steps, False), _steps(delta4 * u4, chunks, steps, False)
    Bs, Cs = _steps(B, chunks, steps, True), _steps(C, chunks, steps, True)
    h, local = None, []
    for d_t, du_t, B_t, C_t in zip(ds, dus, Bs, Cs):  # 1.
        h = du_t * B_t if h is None else torch.exp(d_t * A5) * h + du_t * B_t  # (b, G, d, chunks, N)
        local.append((h * C_t).sum(-1))
    cum = torch.stack(ds, dim=-1).cumsum(-1)  # (b, G, d, chunks, 1, T): Δ summed from the chunk start
    chunk_decay = torch.exp(cum[..., -1] * A5)  # (b, G, d, chunks, N)
    entering = [torch.zeros_like(h[:, :, :, 0])]
    for k in range(chunks):  # 2. (the state after the last chunk is the last state: padding keeps it)
        entering.append(chunk_decay[:, :, :, k] * entering[-1] + h[:, :, :, k])
    H = torch.stack(entering[:-1], dim=3)
    ys = [y_t + (torch.exp(cum[..., s] * A5) * H * C_t).sum(-1) for s, (y_t, C_t) in enumerate(zip(local, Cs))]
    y = torch.stack(ys, dim=-1).flatten(-2)[..., :length].reshape(batch, channels, length)  # 3.
    return _finish(y, u, D, z, dtype_in, entering[-1].reshape(batch, channels, n_state), return_last_state)


def _selective_scan_mamba_ssm(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                              return_last_state=False):
    if not MAMBA_SSM_AVAILABLE:
        raise RuntimeError("scan backend 'mamba_ssm' requested but mamba-ssm (with its CUDA extension) is not importable")
    if not u.is_cuda:
        raise RuntimeError("scan backend 'mamba_ssm' needs CUDA tensors; use 'fused' or 'chunked' on CPU")
    return _mamba_selective_scan_fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)


def _selective_scan_fused(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                          return_last_state=False):
    from .selective_scan_cpu import fused_selective_scan

    return fused_selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)


_FUSED_AVAILABLE: Optional[bool] = None


@torch.compiler.assume_constant_result  # a fact about the installation: traced as a constant
def fused_backend_available() -> bool:
    """Whether the fused CPU kernel (numba) imports; checked once per process."""
    global _FUSED_AVAILABLE
    if _FUSED_AVAILABLE is None:
        try:
            from .selective_scan_cpu import NUMBA_AVAILABLE
        except ImportError:
            NUMBA_AVAILABLE = False
        _FUSED_AVAILABLE = bool(NUMBA_AVAILABLE)
    return _FUSED_AVAILABLE


def _cuda_backend() -> str:
    """The GPU kernel for CUDA tensors, in order of preference.

    Triton first: it ships with every CUDA build of torch and needs no compile step. mamba-ssm only where
    Triton does not import; no GPU measurement yet says mamba-ssm is faster (benchmarks/gpu_check.py times
    both where mamba-ssm is installed, so this order can be revisited on evidence)."""
    if triton_importable():
        return "triton"
    return "mamba_ssm" if MAMBA_SSM_AVAILABLE else "chunked"


def resolve_backend(backend: str, device: torch.device) -> str:
    """Map ``"auto"`` to a concrete backend for tensors on ``device``, per call (as transformers' Mamba
    picks its kernel): CUDA → the GPU kernels; ONNX export → ``"unrolled"`` (pure tensor ops, since ONNX
    runtimes cannot run the registered CPU op, in a small graph); CPU → ``"fused"`` (the registered op
    ``aesmamba::cross_selective_scan``, also under ``torch.compile`` / ``torch.export``) when numba imports;
    ``"unrolled"`` otherwise. Nothing is read from or written to a config."""
    if backend not in SCAN_BACKENDS:
        raise ValueError(f"unknown scan backend {backend!r}; choose one of {SCAN_BACKENDS}")
    if backend != "auto":
        return backend
    if device.type == "cuda":
        return _cuda_backend()
    if torch.onnx.is_in_onnx_export():
        return "unrolled"
    if device.type == "cpu" and fused_backend_available():
        return "fused"
    return "unrolled"


def _selective_scan_triton(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                           return_last_state=False):
    from .selective_scan_triton import triton_selective_scan

    return triton_selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)


_BACKENDS: dict[str, Callable] = {
    "reference": selective_scan_reference,
    "chunked": selective_scan_chunked,
    "unrolled": selective_scan_unrolled,
    "mamba_ssm": _selective_scan_mamba_ssm,
    "fused": _selective_scan_fused,
    "triton": _selective_scan_triton,
}


def selective_scan_fn(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: Optional[torch.Tensor] = None,
    z: Optional[torch.Tensor] = None,
    delta_bias: Optional[torch.Tensor] = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    backend: str = "auto",
):
    """mamba-ssm's ``selective_scan_fn`` signature plus a ``backend`` switch."""
    impl = _BACKENDS[resolve_backend(backend, u.device)]
    return impl(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)


# --------------------------------------------------------------------------------------------------
# VMamba SS2D: four-direction cross scan → selective scan → cross merge
# --------------------------------------------------------------------------------------------------


def cross_scan(x: torch.Tensor) -> torch.Tensor:
    """(b, D, H, W) -> (b, 4, D, L): row-major, column-major, and both reversed."""
    b, d, h, w = x.shape
    rows = x.flatten(2)
    cols = x.transpose(2, 3).flatten(2)
    return torch.stack([rows, cols, rows.flip(-1), cols.flip(-1)], dim=1)


def cross_merge(ys: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(b, 4, D, L) -> (b, D, L) in row-major order: y0 + flip(y2) + T(y1) + T(flip(y3))."""
    b, _, d, length = ys.shape
    rows = ys[:, 0] + ys[:, 2].flip(-1)
    cols = ys[:, 1] + ys[:, 3].flip(-1)
    cols = cols.view(b, d, width, height).transpose(2, 3).reshape(b, d, length)
    return rows + cols


def cross_selective_scan(
    x: torch.Tensor,
    x_proj_weight: torch.Tensor,
    dt_projs_weight: torch.Tensor,
    dt_projs_bias: torch.Tensor,
    A_logs: torch.Tensor,
    Ds: torch.Tensor,
    backend: str = "auto",
) -> torch.Tensor:
    """The SS2D core on a channels-last map.

    Args:
        x: (b, H, W, D) activations after the depth-wise conv and SiLU.
        x_proj_weight: (K, R + 2N, D); dt_projs_weight: (K, D, R); dt_projs_bias: (K, D);
        A_logs: (K*D, N); Ds: (K*D,).
    Returns:
        (b, H, W, D) float32: the four scans merged back to row-major positions.
    """
    resolved = resolve_backend(backend, x.device)
    if resolved == "fused":  # the registered op: x projection by position, no cross-scan/merge copies
        from .selective_scan_cpu import fused_cross_selective_scan

        return fused_cross_selective_scan(x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds)
    if resolved == "triton":
        from .selective_scan_triton import triton_cross_selective_scan

        return triton_cross_selective_scan(x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds)

    b, height, width, d = x.shape
    length = height * width
    k_dirs, _, rank = dt_projs_weight.shape
    n_state = A_logs.shape[1]
    xs = cross_scan(x.permute(0, 3, 1, 2))  # (b, K, D, L)
    x_dbl = torch.einsum("bkdl,kcd->bkcl", xs, x_proj_weight)
    dts, Bs, Cs = torch.split(x_dbl, [rank, n_state, n_state], dim=2)
    dts = torch.einsum("bkrl,kdr->bkdl", dts, dt_projs_weight)
    ys = selective_scan_fn(
        xs.float().reshape(b, k_dirs * d, length),
        dts.float().reshape(b, k_dirs * d, length),
        -torch.exp(A_logs.float()),
        Bs.float(),
        Cs.float(),
        Ds.float(),
        delta_bias=dt_projs_bias.float().reshape(-1),
        delta_softplus=True,
        backend=resolved,
    ).view(b, k_dirs, d, length)
    y = cross_merge(ys, height, width)  # (b, D, L)
    return y.transpose(1, 2).reshape(b, height, width, d)


def softplus_inverse(x: torch.Tensor) -> torch.Tensor:
    """y such that softplus(y) = x (used for the dt bias initialisation)."""
    return x + torch.log(-torch.expm1(-x))


__all__ = [
    "SCAN_BACKENDS",
    "MAMBA_SSM_AVAILABLE",
    "TRITON_AVAILABLE",
    "selective_scan_fn",
    "selective_scan_reference",
    "selective_scan_chunked",
    "selective_scan_unrolled",
    "cross_scan",
    "cross_merge",
    "cross_selective_scan",
    "resolve_backend",
    "match_groups",
    "check_scan_operands",
    "check_cross_shapes",
    "finish_kernel_output",
    "fused_backend_available",
    "softplus_inverse",
]
