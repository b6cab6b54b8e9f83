"""The fused CPU scans as registered torch ops (``torch.library.custom_op``).

Registered ops (namespace ``aesmamba``), each with a fake (shape-only) implementation for tracing and an
autograd formula, so that ``torch.compile(fullgraph=True)`` and ``torch.export`` see one opaque node per scan
instead of numba calls on ``.numpy()`` views:

* ``aesmamba::selective_scan(u, delta, A, B, C, D, delta_bias, softplus, save_ckpt) -> (y, last, ckpt)``
  – mamba-ssm's 1-D scan with B/C grouped per channel group (no gate: ``z`` is applied by the caller);
* ``aesmamba::cross_selective_scan(x, xdbl, dt_projs_weight, dt_projs_bias, A, Ds, save_ckpt) -> (y, ckpt)``
  – the VMamba SS2D core after the x projection: four directions read through index maps, Δ projected
  inside the kernel, the directions merged back into one map;
* ``aesmamba::selective_scan_backward`` / ``aesmamba::cross_selective_scan_backward`` – their gradients.

``ckpt`` is the state every ``CHUNK`` steps, kept for the backward (an empty tensor when ``save_ckpt`` is
false, i.e. at inference); the backward recomputes everything else chunk by chunk, and recomputes the
checkpoints too when the forward did not keep them.

What an exported program contains: these ops. Torch-side runtimes (``torch.export`` + AOTInductor, the
``torch.compile`` cache) run them as long as this module is imported; runtimes without Python (ONNX) need
the pure-tensor ``"unrolled"`` scan, which :func:`selective_scan.resolve_backend` picks during ONNX export.

Only torch is imported here: the kernels (numba) load on the first real call. Same-folder imports only.
"""

from __future__ import annotations

import torch

NAMESPACE = "aesmamba"
CHUNK = 32  # must equal selective_scan_cpu.CHUNK (the kernels' checkpoint interval); a test checks it


def _defined(name: str) -> bool:
    """True when the op already exists (e.g. the package and a remote-code copy of this file both loaded)."""
    try:
        getattr(getattr(torch.ops, NAMESPACE), name)
        return True
    except (AttributeError, RuntimeError):
        return False


def _n_chunks(length):
    return (length + CHUNK - 1) // CHUNK


# ----------------------------------------------------------------------------------------------- 1-D scan


def _scan_fwd_impl(u, delta, A, B, C, D, delta_bias, softplus: bool, save_ckpt: bool):
    from .selective_scan_cpu import scan_forward

    return scan_forward(u, delta, A, B, C, D, delta_bias, softplus, save_ckpt)


def _scan_fwd_fake(u, delta, A, B, C, D, delta_bias, softplus: bool, save_ckpt: bool):
    batch, chans, length = u.shape
    n_groups, n_state = B.shape[1], A.shape[1]
    y = u.new_empty(batch, chans, length, dtype=torch.float32)
    last = u.new_empty(batch, chans, n_state, dtype=torch.float32)
    ckpt_shape = (batch, n_groups, _n_chunks(length), n_state, chans // n_groups) if save_ckpt else (0,)
    return y, last, u.new_empty(ckpt_shape, dtype=torch.float32)


def _scan_bwd_impl(dy, dlast, u, delta, A, B, C, D, delta_bias, ckpt, softplus: bool):
    from .selective_scan_cpu import scan_backward

    return scan_backward(dy, dlast, u, delta, A, B, C, D, delta_bias, ckpt, softplus)


def _scan_bwd_fake(dy, dlast, u, delta, A, B, C, D, delta_bias, ckpt, softplus: bool):
    return tuple(t.new_empty(t.shape, dtype=torch.float32) for t in (u, delta, A, B, C, D, delta_bias))


def _scan_setup_context(ctx, inputs, output):
    u, delta, A, B, C, D, delta_bias, softplus, _ = inputs
    ctx.save_for_backward(u, delta, A, B, C, D, delta_bias, output[2])
    ctx.softplus = softplus
    ctx.dtypes = tuple(t.dtype for t in (u, delta, A, B, C, D, delta_bias))


def _scan_backward(ctx, dy, dlast, dckpt):
    u, delta, A, B, C, D, delta_bias, ckpt = ctx.saved_tensors
    if dy is None:
        dy = torch.zeros_like(u, dtype=torch.float32)
    if dlast is None:
        dlast = u.new_zeros(u.shape[0], u.shape[1], A.shape[1], dtype=torch.float32)
    grads = getattr(torch.ops, NAMESPACE).selective_scan_backward(
        dy, dlast, u, delta, A, B, C, D, delta_bias, ckpt, ctx.softplus
    )
    return (*(g.to(dt) for g, dt in zip(grads, ctx.dtypes)), None, None)


# ----------------------------------------------------------------------------------------------- 2-D scan


def _cross_fwd_impl(x, xdbl, dt_projs_weight, dt_projs_bias, A, Ds, save_ckpt: bool):
    from .selective_scan_cpu import cross_scan_forward

    return cross_scan_forward(x, xdbl, dt_projs_weight, dt_projs_bias, A, Ds, save_ckpt)


def _cross_fwd_fake(x, xdbl, dt_projs_weight, dt_projs_bias, A, Ds, save_ckpt: bool):
    batch, height, width, chans = x.shape
    n_dirs, n_state = dt_projs_weight.shape[0], A.shape[1]
    y = x.new_empty(batch, height, width, chans, dtype=torch.float32)
    ckpt_shape = (batch, n_dirs, _n_chunks(height * width), n_state, chans) if save_ckpt else (0,)
    return y, x.new_empty(ckpt_shape, dtype=torch.float32)


def _cross_bwd_impl(dy, x, xdbl, dt_projs_weight, dt_projs_bias, A, Ds, ckpt):
    from .selective_scan_cpu import cross_scan_backward

    return cross_scan_backward(dy, x, xdbl, dt_projs_weight, dt_projs_bias, A, Ds, ckpt)


def _cross_bwd_fake(dy, x, xdbl, dt_projs_weight, dt_projs_bias, A, Ds, ckpt):
    return tuple(t.new_empty(t.shape, dtype=torch.float32) for t in (x, xdbl, dt_projs_weight, dt_projs_bias, A, Ds))


def _cross_setup_context(ctx, inputs, output):
    x, xdbl, dtw, bias, A, Ds, _ = inputs
    ctx.save_for_backward(x, xdbl, dtw, bias, A, Ds, output[1])
    ctx.dtypes = tuple(t.dtype for t in (x, xdbl, dtw, bias, A, Ds))


def _cross_backward(ctx, dy, dckpt):
    x, xdbl, dtw, bias, A, Ds, ckpt = ctx.saved_tensors
    if dy is None:
        dy = torch.zeros_like(x, dtype=torch.float32)
    grads = getattr(torch.ops, NAMESPACE).cross_selective_scan_backward(dy, x, xdbl, dtw, bias, A, Ds, ckpt)
    return (*(g.to(dt) for g, dt in zip(grads, ctx.dtypes)), None)


# ----------------------------------------------------------------------------------------------- registration


def _register(name: str, impl, fake, backward=None, setup_context=None) -> None:
    if _defined(name):
        return
    op = torch.library.custom_op(f"{NAMESPACE}::{name}", impl, mutates_args=(), device_types="cpu")
    op.register_fake(fake)
    if backward is not None:
        op.register_autograd(backward, setup_context=setup_context)


def _annotate(fn, annotations: dict):
    fn.__annotations__ = dict(annotations)
    return fn


_T = torch.Tensor
_TUPLE2 = tuple[_T, _T]
_TUPLE3 = tuple[_T, _T, _T]
_SCAN_ARGS = dict(u=_T, delta=_T, A=_T, B=_T, C=_T, D=_T, delta_bias=_T, softplus=bool, save_ckpt=bool)
_SCAN_BWD_ARGS = dict(dy=_T, dlast=_T, u=_T, delta=_T, A=_T, B=_T, C=_T, D=_T, delta_bias=_T, ckpt=_T,
                      softplus=bool)
_CROSS_ARGS = dict(x=_T, xdbl=_T, dt_projs_weight=_T, dt_projs_bias=_T, A=_T, Ds=_T, save_ckpt=bool)
_CROSS_BWD_ARGS = dict(dy=_T, x=_T, xdbl=_T, dt_projs_weight=_T, dt_projs_bias=_T, A=_T, Ds=_T, ckpt=_T)

# custom_op reads the schema from the annotations; they are set explicitly (postponed annotations are strings)
_register("selective_scan_backward", _annotate(_scan_bwd_impl, {**_SCAN_BWD_ARGS, "return": tuple[(_T,) * 7]}),
          _scan_bwd_fake)
_register("selective_scan", _annotate(_scan_fwd_impl, {**_SCAN_ARGS, "return": _TUPLE3}), _scan_fwd_fake,
          _scan_backward, _scan_setup_context)
_register("cross_selective_scan_backward",
          _annotate(_cross_bwd_impl, {**_CROSS_BWD_ARGS, "return": tuple[(_T,) * 6]}), _cross_bwd_fake)
_register("cross_selective_scan", _annotate(_cross_fwd_impl, {**_CROSS_ARGS, "return": _TUPLE2}), _cross_fwd_fake,
          _cross_backward, _cross_setup_context)


def _needs_grad(*tensors: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def selective_scan_op(u, delta, A, B, C, D, delta_bias, softplus: bool):
    """Runs ``aesmamba::selective_scan``; B/C already (batch, G, N, L); D/delta_bias tensors. Returns (y, last)."""
    save = _needs_grad(u, delta, A, B, C, D, delta_bias)
    y, last, _ = getattr(torch.ops, NAMESPACE).selective_scan(u, delta, A, B, C, D, delta_bias, softplus, save)
    return y, last


def cross_selective_scan_op(x, xdbl, dt_projs_weight, dt_projs_bias, A, Ds):
    """Runs ``aesmamba::cross_selective_scan`` on x (b, H, W, D) and its projection xdbl (b, H, W, K·(R+2N))."""
    save = _needs_grad(x, xdbl, dt_projs_weight, dt_projs_bias, A, Ds)
    y, _ = getattr(torch.ops, NAMESPACE).cross_selective_scan(x, xdbl, dt_projs_weight, dt_projs_bias, A, Ds, save)
    return y


__all__ = ["NAMESPACE", "selective_scan_op", "cross_selective_scan_op"]
