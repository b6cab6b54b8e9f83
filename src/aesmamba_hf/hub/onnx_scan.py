"""A pure-tensor 2-D selective scan shaped for ONNX graphs (what :mod:`.onnx_export` traces).

The package's own pure-PyTorch backend (``"chunked"``) builds a (b, c, N, T, T) weight tensor per chunk of 32
steps: on the 56×56 map of VMamba-T's first stage that is 98 chunks of 50 MB per image, each a few large ops;
exported, the graph is large and onnxruntime runs it at a fraction of an image per second. This formulation
splits the sequence of L positions into ``n`` chunks of ``T ≈ √L`` steps and scans **all chunks at once**, one
step at a time, so the graph holds about 2·√L small steps per block, each an element-wise op on
(b, K, D, n, N) tensors (a few MB):

1. local scan of every chunk from a zero state: h_t = exp(Δ_t·A)·h_{t-1} + Δ_t·u_t·B_t, y_t = C_t·h_t;
2. the state entering each chunk, sequentially over the ``n`` chunks: H_{k+1} = exp(A·ΣΔ_k)·H_k + h_end,k;
3. the correction of every position by its chunk's entering state: y_t += C_t·(exp(A·cumΔ_t)·H_k).

It is the sequential recurrence regrouped (every exponent is ≤ 0, so nothing overflows whatever the decay),
equal to the reference to float32 rounding. Batch stays a free axis (the ONNX batch dimension is dynamic);
the spatial size is fixed when the graph is traced (the processor always produces the same size).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

from ..selective_scan import cross_merge, cross_scan


def _steps(t: torch.Tensor, chunks: int, steps: int, state_axis: bool) -> list[torch.Tensor]:
    """(b, K, X, L) → ``steps`` tensors shaped to broadcast against the state (b, K, d, chunks, N): position
    ``k·steps + s`` is chunk k, step s. ``state_axis``: X is the state axis N (B, C), else the channels d."""
    b, k, x, length = t.shape
    pad = chunks * steps - length
    if pad:  # padded positions carry Δ = 0 (no decay, no input) and come after every real one
        t = F.pad(t, (0, pad))
    t = t.reshape(b, k, x, chunks, steps)
    t = t.permute(0, 1, 3, 2, 4).unsqueeze(2) if state_axis else t.unsqueeze(4)  # (b,K,1,n,N,T) / (b,K,d,n,1,T)
    return list(t.unbind(-1))


def grouped_selective_scan(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                           C: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
    """The S6 scan over (b, K, d, L) inputs with per-direction B/C (b, K, N, L), A (K, d, N), D (K, d);
    ``delta`` already has its bias and softplus. Returns y (b, K, d, L) in the inputs' dtype."""
    length = u.shape[-1]
    steps = math.isqrt(length - 1) + 1 if length > 1 else 1  # T = ⌈√L⌉
    chunks = -(-length // steps)
    A5 = A[None, :, :, None, :]  # (1, K, d, 1, N): broadcast over batch and chunks
    ds, dus = _steps(delta, chunks, steps, False), _steps(delta * u, chunks, steps, False)
    Bs, Cs = _steps(B, chunks, steps, True), _steps(C, chunks, steps, True)

    # 1. every chunk scanned from a zero state, all chunks in parallel
    h = None
    local = []
    for d_t, du_t, B_t, C_t in zip(ds, dus, Bs, Cs):
        h = du_t * B_t if h is None else torch.exp(d_t * A5) * h + du_t * B_t  # (b, K, d, chunks, N)
        local.append((h * C_t).sum(-1))
    # 2. the state entering each chunk
    cum = torch.stack(ds, dim=-1).cumsum(-1)  # (b, K, d, chunks, 1, T): Δ summed from the chunk start
    chunk_decay = torch.exp(cum[..., -1] * A5)  # (b, K, d, chunks, N)
    entering = [torch.zeros_like(h[:, :, :, 0])]
    for k in range(chunks - 1):
        entering.append(chunk_decay[:, :, :, k] * entering[-1] + h[:, :, :, k])
    H = torch.stack(entering, dim=3)  # (b, K, d, chunks, N)
    # 3. each position corrected by its chunk's entering state
    ys = [y_t + (torch.exp(cum[..., s] * A5) * H * C_t).sum(-1) for s, (y_t, C_t) in enumerate(zip(local, Cs))]
    y = torch.stack(ys, dim=-1).flatten(-2)[..., :length]  # (b, K, d, L)
    return y + u * D[None, :, :, None]


def cross_selective_scan_unrolled(
    x: torch.Tensor,
    x_proj_weight: torch.Tensor,
    dt_projs_weight: torch.Tensor,
    dt_projs_bias: torch.Tensor,
    A_logs: torch.Tensor,
    Ds: torch.Tensor,
    backend: Optional[str] = None,
) -> torch.Tensor:
    """``cross_selective_scan``'s signature and result (x (b, H, W, D) → (b, H, W, D) float32) through
    :func:`grouped_selective_scan`; ``backend`` is accepted and ignored (this *is* the formulation)."""
    b, height, width, d = x.shape
    k_dirs, _, rank = dt_projs_weight.shape
    n_state = A_logs.shape[1]
    xs = cross_scan(x.permute(0, 3, 1, 2).float())  # (b, K, D, L)
    x_dbl = torch.einsum("bkdl,kcd->bkcl", xs, x_proj_weight.float())
    dts, Bs, Cs = torch.split(x_dbl, [rank, n_state, n_state], dim=2)
    dts = torch.einsum("bkrl,kdr->bkdl", dts, dt_projs_weight.float())
    delta = F.softplus(dts + dt_projs_bias.float()[None, :, :, None])
    A = -torch.exp(A_logs.float()).view(k_dirs, d, n_state)
    ys = grouped_selective_scan(xs, delta, A, Bs, Cs, Ds.float().view(k_dirs, d))
    return cross_merge(ys, height, width).transpose(1, 2).reshape(b, height, width, d)


__all__ = ["cross_selective_scan_unrolled", "grouped_selective_scan"]
