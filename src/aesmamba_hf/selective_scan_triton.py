"""Triton selective scan for GPUs: the 1-D scan (mamba-ssm's signature) and VMamba's fused 2-D cross scan.

Why Triton: it ships beside every CUDA build of torch, so the GPU path needs no CUDA compile (mamba-ssm
has no binary wheel). With ``TRITON_INTERPRET=1`` the same kernels run on CPU tensors through Triton's
interpreter, which is how the tests check them on machines without a GPU.

Design (mirrors the fused CPU kernel in :mod:`selective_scan_cpu`):

* One program owns a block of channels of one batch element and runs the recurrence over time
  sequentially, the state ``h`` (channels × N) held in registers in float32 whatever the input dtype
  (float32, bfloat16 and float16 inputs are upcast on load).
* Every tensor is addressed through strides as ``t[b, k, pos, d]`` (direction/group ``k``, position
  ``pos``, channel ``d``), so the 1-D API reads (b, G·D, L) tensors in place and the cross scan reads the
  channels-last map (b, H, W, D) in place.
* The four VMamba directions are index maps computed in the kernel (step → row-major position: rows,
  columns, rows reversed, columns reversed): no stacked, flipped or transposed copies. The four direction
  outputs are summed into one row-major map by the program that owns them (the cross merge), or into
  four slots summed afterwards when the batch is too small to fill the GPU with one program per channel
  block.
* The low-rank Δ projection (R ≈ C/16) is done inside the kernel, so no (b, K, L, D) Δ tensor exists.
* Backward: the forward saves the state every :data:`CHUNK` steps; the backward recomputes one chunk of
  states into a per-program scratch tile, then runs the reverse recurrence over it. Per-channel
  gradients (A, D, Δ bias, Δ projection) are accumulated in registers and written once per program;
  the gradients of B, C and the low-rank Δ input are reduced over a program's channels and added across
  channel blocks with atomics (so their last bits may differ from run to run).

Only same-folder imports: transformers copies this file flat into remote-code checkpoints. Triton is
imported at the first scan, guardedly: without it this module imports, :data:`TRITON_AVAILABLE` is False
and the backend raises a clear error.
"""

from __future__ import annotations

import importlib.util
import os
import types
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

import torch

# Triton is imported at the first use (importing it costs about a second, and it must never be needed to
# import this package); the kernels see ``tl`` through the namespace ``_jit_kernels`` builds.
tl = _sum_combine = None
TRITON_AVAILABLE = importlib.util.find_spec("triton") is not None  # installed; see triton_importable()
CHUNK = 64  # steps between saved states (GPU: the scratch tile of one chunk stays in L2)
_BLOCK_D = 32  # channels per program
_MIN_PROGRAMS_MERGED = 256  # fewer (batch × channel blocks) than this: one program per direction

__all__ = ["TRITON_AVAILABLE", "CHUNK", "interpreter_enabled", "triton_importable", "check_triton_tensors", "triton_selective_scan",
           "triton_cross_selective_scan"]


def interpreter_enabled() -> bool:
    """True when ``TRITON_INTERPRET`` asks for Triton's CPU interpreter (read at every call)."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "on", "yes")


@lru_cache(maxsize=1)
def _import_triton():
    """(triton, triton.language), or the reason they do not import."""
    try:
        import triton
        import triton.language as language
    except Exception as err:  # noqa: BLE001 - any import problem simply disables the Triton backend
        return None, f"triton failed to import ({type(err).__name__}: {err})"
    return (triton, language), None


def triton_importable() -> bool:
    """True when Triton imports (imports it on the first call)."""
    return TRITON_AVAILABLE and _import_triton()[0] is not None


def check_triton_tensors(device: torch.device) -> None:
    """Raise a clear error unless the Triton backend can run on ``device``."""
    if not triton_importable():
        reason = _import_triton()[1] if TRITON_AVAILABLE else "triton is not installed"
        raise RuntimeError(f"scan backend 'triton' is unavailable: {reason}; pip install triton, or use another "
                           "backend")
    if device.type != "cuda" and not interpreter_enabled():
        raise RuntimeError(f"scan backend 'triton' needs CUDA tensors (got {device}); set TRITON_INTERPRET=1 to run "
                           "it on CPU through Triton's interpreter (slow, for tests), or use 'fused' on CPU")


# --------------------------------------------------------------------------------------------------
# Kernels. Plain functions here; ``_kernels()`` wraps them with ``triton.jit`` at the first call in each
# mode, because triton.jit decides between compiled and interpreted code when it wraps.
# --------------------------------------------------------------------------------------------------


def _position(k, t, L, H, W, CROSS):
    """Step t of direction k → position; CROSS: rows, columns, rows reversed, columns reversed."""
    if CROSS:
        tt = tl.where(k >= 2, L - 1 - t, t)
        return tl.where(k % 2 == 1, (tt % H) * W + tt // H, tt)
    return t


def _softplus(x):
    """max(x, 0) + log1p(exp(-|x|)), with log1p accurate for small arguments (Goldberg's trick)."""
    e = tl.exp(-tl.abs(x))
    w = 1.0 + e
    exact = w == 1.0  # e below float32's resolution next to 1: log1p(e) = e
    log1p = tl.where(exact, e, tl.log(w) * e / tl.where(exact, 1.0, w - 1.0))
    return tl.maximum(x, 0.0) + log1p


def _scan_fwd(
    u_ptr, su_b, su_k, su_l, su_d,
    dl_ptr, sdl_b, sdl_k, sdl_l, sdl_d,
    b_ptr, sb_b, sb_k, sb_n, sb_l,
    c_ptr, sc_b, sc_k, sc_n, sc_l,
    x_ptr, sx_b, sx_k, sx_r, sx_l,
    w_ptr, sw_k, sw_r, sw_d,
    a_ptr, dv_ptr, bias_ptr,
    out_ptr, so_b, so_s, so_l, so_d,
    ck_ptr, last_ptr,
    L, H, W, Dch, K, R, N_CHUNKS,
    N: tl.constexpr, N_PAD: tl.constexpr, R_PAD: tl.constexpr, BLOCK_D: tl.constexpr,
    K_PER_PROG: tl.constexpr, CHUNK_T: tl.constexpr, CROSS: tl.constexpr, PROJ: tl.constexpr,
    SOFTPLUS: tl.constexpr, SAVE_CKPT: tl.constexpr, SAVE_LAST: tl.constexpr,
):
    pid_d = tl.program_id(0)
    pid_g = tl.program_id(1)
    pid_b = tl.program_id(2).to(tl.int64)
    d_offs = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    d_mask = d_offs < Dch
    n_offs = tl.arange(0, N_PAD)
    n_mask = n_offs < N
    dn_mask = d_mask[:, None] & n_mask[None, :]
    r_offs = tl.arange(0, R_PAD)
    r_mask = r_offs < R
    dn_offs = d_offs[:, None] * N_PAD + n_offs[None, :]  # into (Dch, N_PAD) tiles of ck/last
    for kk in range(K_PER_PROG):
        k = pid_g * K_PER_PROG + kk
        A = tl.load(a_ptr + (k * Dch + d_offs)[:, None] * N + n_offs[None, :], mask=dn_mask, other=0.0)
        Dv = tl.load(dv_ptr + k * Dch + d_offs, mask=d_mask, other=0.0)
        bias = tl.load(bias_ptr + k * Dch + d_offs, mask=d_mask, other=0.0)
        if PROJ:
            Wd = tl.load(w_ptr + k * sw_k + r_offs[:, None] * sw_r + d_offs[None, :] * sw_d,
                         mask=r_mask[:, None] & d_mask[None, :], other=0.0).to(tl.float32)
        # per-(batch, direction) row pointers, hoisted out of the time loop
        u_row = u_ptr + pid_b * su_b + k * su_k + d_offs * su_d
        dl_row = dl_ptr + pid_b * sdl_b + k * sdl_k + d_offs * sdl_d
        x_row = x_ptr + pid_b * sx_b + k * sx_k + r_offs * sx_r
        b_row = b_ptr + pid_b * sb_b + k * sb_k + n_offs * sb_n
        c_row = c_ptr + pid_b * sc_b + k * sc_k + n_offs * sc_n
        o_row = out_ptr + pid_b * so_b + pid_g * so_s + d_offs * so_d
        h = tl.full((BLOCK_D, N_PAD), 0.0, tl.float32)
        ck_base = ck_ptr + (pid_b * K + k) * N_CHUNKS * Dch * N_PAD
        for t in range(L):
            if SAVE_CKPT:
                if t % CHUNK_T == 0:
                    tl.store(ck_base + (t // CHUNK_T) * Dch * N_PAD + dn_offs, h, mask=dn_mask)
            pos = _position(k, t, L, H, W, CROSS)
            uu = tl.load(u_row + pos * su_l,
                         mask=d_mask, other=0.0).to(tl.float32)
            if PROJ:
                xr = tl.load(x_row + pos * sx_l,
                             mask=r_mask, other=0.0).to(tl.float32)
                dl = tl.reduce(xr[:, None] * Wd, 0, _sum_combine) + bias
            else:
                dl = tl.load(dl_row + pos * sdl_l,
                             mask=d_mask, other=0.0).to(tl.float32) + bias
            if SOFTPLUS:
                dl = _softplus(dl)
            Bt = tl.load(b_row + pos * sb_l,
                         mask=n_mask, other=0.0).to(tl.float32)
            Ct = tl.load(c_row + pos * sc_l,
                         mask=n_mask, other=0.0).to(tl.float32)
            h = tl.exp(dl[:, None] * A) * h + (dl * uu)[:, None] * Bt[None, :]
            y = tl.reduce(h * Ct[None, :], 1, _sum_combine) + Dv * uu
            o_ptrs = o_row + pos * so_l
            if K_PER_PROG > 1:  # the cross merge: this program owns the slot, so no atomics
                y += tl.load(o_ptrs, mask=d_mask, other=0.0)
            tl.store(o_ptrs, y, mask=d_mask)
        if SAVE_LAST:
            tl.store(last_ptr + (pid_b * K + k) * Dch * N_PAD + dn_offs, h, mask=dn_mask)


def _scan_bwd(
    u_ptr, su_b, su_k, su_l, su_d,
    dl_ptr, sdl_b, sdl_k, sdl_l, sdl_d,
    b_ptr, sb_b, sb_k, sb_n, sb_l,
    c_ptr, sc_b, sc_k, sc_n, sc_l,
    x_ptr, sx_b, sx_k, sx_r, sx_l,
    w_ptr, sw_k, sw_r, sw_d,
    a_ptr, dv_ptr, bias_ptr,
    dout_ptr, so_b, so_s, so_l, so_d,
    ck_ptr, dlast_ptr, scratch_ptr,
    du_ptr, sdu_b, sdu_s, sdu_l, sdu_d,
    ddl_ptr, sdd_b, sdd_k, sdd_l, sdd_d,
    dB_ptr, dC_ptr, dx_ptr, dA_ptr, dD_ptr, dbias_ptr, dW_ptr,
    L, H, W, Dch, K, R, N_CHUNKS,
    N: tl.constexpr, N_PAD: tl.constexpr, R_PAD: tl.constexpr, BLOCK_D: tl.constexpr,
    K_PER_PROG: tl.constexpr, CHUNK_T: tl.constexpr, CROSS: tl.constexpr, PROJ: tl.constexpr,
    SOFTPLUS: tl.constexpr,
):
    """Reverse pass. dB/dC/dx: (b, K, N or R, L) float32, added with atomics; dA (b, K·D, N_PAD), dD and
    dbias (b, K·D), dW (b, K, R_PAD, D): per batch element, summed by the caller."""
    pid_d = tl.program_id(0)
    pid_g = tl.program_id(1)
    pid_b = tl.program_id(2).to(tl.int64)
    d_offs = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    d_mask = d_offs < Dch
    n_offs = tl.arange(0, N_PAD)
    n_mask = n_offs < N
    dn_mask = d_mask[:, None] & n_mask[None, :]
    r_offs = tl.arange(0, R_PAD)
    r_mask = r_offs < R
    dn_offs = d_offs[:, None] * N_PAD + n_offs[None, :]
    for kk in range(K_PER_PROG):
        k = pid_g * K_PER_PROG + kk
        A = tl.load(a_ptr + (k * Dch + d_offs)[:, None] * N + n_offs[None, :], mask=dn_mask, other=0.0)
        Dv = tl.load(dv_ptr + k * Dch + d_offs, mask=d_mask, other=0.0)
        bias = tl.load(bias_ptr + k * Dch + d_offs, mask=d_mask, other=0.0)
        if PROJ:
            Wd = tl.load(w_ptr + k * sw_k + r_offs[:, None] * sw_r + d_offs[None, :] * sw_d,
                         mask=r_mask[:, None] & d_mask[None, :], other=0.0).to(tl.float32)
            dW_acc = tl.full((R_PAD, BLOCK_D), 0.0, tl.float32)
        # per-(batch, direction) row pointers, hoisted out of the time loop
        u_row = u_ptr + pid_b * su_b + k * su_k + d_offs * su_d
        dl_row = dl_ptr + pid_b * sdl_b + k * sdl_k + d_offs * sdl_d
        x_row = x_ptr + pid_b * sx_b + k * sx_k + r_offs * sx_r
        b_row = b_ptr + pid_b * sb_b + k * sb_k + n_offs * sb_n
        c_row = c_ptr + pid_b * sc_b + k * sc_k + n_offs * sc_n
        o_row = dout_ptr + pid_b * so_b + pid_g * so_s + d_offs * so_d
        du_row = du_ptr + pid_b * sdu_b + pid_g * sdu_s + d_offs * sdu_d
        ddl_row = ddl_ptr + pid_b * sdd_b + k * sdd_k + d_offs * sdd_d
        g = tl.load(dlast_ptr + (pid_b * K + k) * Dch * N_PAD + dn_offs, mask=dn_mask, other=0.0)
        dA_acc = tl.full((BLOCK_D, N_PAD), 0.0, tl.float32)
        dD_acc = tl.full((BLOCK_D,), 0.0, tl.float32)
        dbias_acc = tl.full((BLOCK_D,), 0.0, tl.float32)
        ck_base = ck_ptr + (pid_b * K + k) * N_CHUNKS * Dch * N_PAD
        sc_base = scratch_ptr + (pid_b * K + k) * (CHUNK_T + 1) * Dch * N_PAD
        grad_bk = (pid_b * K + k)  # row of the (b, K, ·, L) gradient buffers
        for jj in range(N_CHUNKS):
            j = N_CHUNKS - 1 - jj
            t0 = j * CHUNK_T
            steps = tl.minimum(CHUNK_T, L - t0)
            # 1. recompute the chunk's states from its checkpoint into the scratch tile:
            #    slot 0 holds the state before the chunk, slot s + 1 the state after its step s
            h = tl.load(ck_base + j * Dch * N_PAD + dn_offs, mask=dn_mask, other=0.0)
            tl.store(sc_base + dn_offs, h, mask=dn_mask)
            for s in range(steps):
                pos = _position(k, t0 + s, L, H, W, CROSS)
                uu = tl.load(u_row + pos * su_l,
                             mask=d_mask, other=0.0).to(tl.float32)
                if PROJ:
                    xr = tl.load(x_row + pos * sx_l,
                                 mask=r_mask, other=0.0).to(tl.float32)
                    dl = tl.reduce(xr[:, None] * Wd, 0, _sum_combine) + bias
                else:
                    dl = tl.load(dl_row + pos * sdl_l,
                                 mask=d_mask, other=0.0).to(tl.float32) + bias
                if SOFTPLUS:
                    dl = _softplus(dl)
                Bt = tl.load(b_row + pos * sb_l,
                             mask=n_mask, other=0.0).to(tl.float32)
                h = tl.exp(dl[:, None] * A) * h + (dl * uu)[:, None] * Bt[None, :]
                tl.store(sc_base + (s + 1) * Dch * N_PAD + dn_offs, h, mask=dn_mask)
            tl.debug_barrier()
            # 2. reverse recurrence over the chunk; g = dL/dh_t
            for ss in range(steps):
                s = steps - 1 - ss
                pos = _position(k, t0 + s, L, H, W, CROSS)
                uu = tl.load(u_row + pos * su_l,
                             mask=d_mask, other=0.0).to(tl.float32)
                if PROJ:
                    xr = tl.load(x_row + pos * sx_l,
                                 mask=r_mask, other=0.0).to(tl.float32)
                    raw = tl.reduce(xr[:, None] * Wd, 0, _sum_combine) + bias
                else:
                    raw = tl.load(dl_row + pos * sdl_l,
                                  mask=d_mask, other=0.0).to(tl.float32) + bias
                if SOFTPLUS:
                    dl = _softplus(raw)
                else:
                    dl = raw
                Bt = tl.load(b_row + pos * sb_l,
                             mask=n_mask, other=0.0).to(tl.float32)
                Ct = tl.load(c_row + pos * sc_l,
                             mask=n_mask, other=0.0).to(tl.float32)
                dA = tl.exp(dl[:, None] * A)
                h_prev = tl.load(sc_base + s * Dch * N_PAD + dn_offs, mask=dn_mask, other=0.0)
                h_t = tl.load(sc_base + (s + 1) * Dch * N_PAD + dn_offs, mask=dn_mask, other=0.0)
                dy = tl.load(o_row + pos * so_l,
                             mask=d_mask, other=0.0).to(tl.float32)
                g += dy[:, None] * Ct[None, :]
                gB = tl.reduce(g * Bt[None, :], 1, _sum_combine)
                ddl = tl.reduce(g * h_prev * A * dA, 1, _sum_combine) + gB * uu
                du = gB * dl + dy * Dv
                dA_acc += g * h_prev * dl[:, None] * dA
                dD_acc += dy * uu
                if SOFTPLUS:
                    ddl = ddl / (1.0 + tl.exp(-raw))
                ddl = tl.where(d_mask, ddl, 0.0)
                dbias_acc += ddl
                lrow = grad_bk * N * L + n_offs * L + pos
                tl.atomic_add(dC_ptr + lrow, tl.reduce(dy[:, None] * h_t, 0, _sum_combine), mask=n_mask)
                tl.atomic_add(dB_ptr + lrow, tl.reduce(g * (dl * uu)[:, None], 0, _sum_combine), mask=n_mask)
                if PROJ:
                    dW_acc += xr[:, None] * ddl[None, :]
                    dxr = tl.reduce(Wd * ddl[None, :], 1, _sum_combine)
                    tl.atomic_add(dx_ptr + grad_bk * R * L + r_offs * L + pos, dxr, mask=r_mask)
                else:
                    tl.store(ddl_row + pos * sdd_l, ddl, mask=d_mask)
                du_ptrs = du_row + pos * sdu_l
                if K_PER_PROG > 1:
                    du += tl.load(du_ptrs, mask=d_mask, other=0.0)
                tl.store(du_ptrs, du, mask=d_mask)
                g = g * dA
            tl.debug_barrier()  # the next chunk overwrites the scratch tile
        kd = pid_b * K * Dch + k * Dch + d_offs
        tl.store(dA_ptr + kd[:, None] * N_PAD + n_offs[None, :], dA_acc, mask=dn_mask)
        tl.store(dD_ptr + kd, dD_acc, mask=d_mask)
        tl.store(dbias_ptr + kd, dbias_acc, mask=d_mask)
        if PROJ:
            tl.store(dW_ptr + (pid_b * K + k) * R_PAD * Dch + r_offs[:, None] * Dch + d_offs[None, :], dW_acc,
                     mask=r_mask[:, None] & d_mask[None, :])


def _rebind(fn, namespace: dict):
    """A copy of ``fn`` that resolves its globals in ``namespace`` (same code, so the same source for Triton)."""
    copy = types.FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__, fn.__closure__)
    copy.__module__, copy.__qualname__, copy.__doc__ = fn.__module__, fn.__qualname__, fn.__doc__
    return copy


@lru_cache(maxsize=2)
def _jit_kernels(interpret: bool):
    """(forward, backward) kernels for one mode. ``triton.jit`` decides between compiled and interpreted code
    when it wraps, and a kernel may only call helpers wrapped the same way, so each mode gets its own copies
    of the functions, bound to a namespace holding that mode's helpers."""
    (triton, language), _ = _import_triton()
    previous = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1" if interpret else "0"
    try:
        # tl.sum / tl.zeros are themselves jitted in triton.language, in the mode that held when triton was
        # first imported (torch imports it early): the kernels use the builtins tl.reduce / tl.full instead,
        # with triton's own sum combiner, which the interpreter recognises and runs as one NumPy sum.
        namespace = dict(globals(), tl=language, _sum_combine=language.standard._sum_combine)
        for helper in (_position, _softplus):
            # the interpreter runs a kernel as Python: plain helpers are called directly, whereas each call
            # of a jitted helper would re-patch triton.language first (most of the interpreter's time)
            plain = _rebind(helper, namespace)
            namespace[helper.__name__] = plain if interpret else triton.jit(plain)
        # sizes are not specialised (divisibility by 16 would compile one variant per VMamba stage); strides are
        # (a unit channel stride gives vector loads)
        sizes = ["L", "H", "W", "Dch", "K", "R", "N_CHUNKS"]
        return (triton.jit(_rebind(_scan_fwd, namespace), do_not_specialize=sizes),
                triton.jit(_rebind(_scan_bwd, namespace), do_not_specialize=sizes))
    finally:
        if previous is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = previous


def _kernels():
    return _jit_kernels(interpreter_enabled())


# --------------------------------------------------------------------------------------------------
# Launchers
# --------------------------------------------------------------------------------------------------


def _pow2(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


@dataclass
class _Problem:
    """One scan as strided views: tensors (u, delta, B, C, xr, dtw, A, Dv, bias), their [b, k, ·, ·] strides,
    and the sizes. ``xr``/``dtw`` (the low-rank Δ input and the Δ projection) are used when R > 0, ``delta``
    otherwise; an unused slot holds a one-element dummy with zero strides."""

    tensors: tuple
    strides: tuple  # u, delta: [b, k, pos, d]; B, C, xr: [b, k, n|r, pos]; dtw: [k, r, d]
    batch: int
    n_dirs: int
    length: int
    chans: int
    n_state: int
    rank: int
    height: int
    width: int
    cross: bool
    softplus: bool
    k_per_prog: int
    chunk: int

    def common_args(self) -> list:
        args = []
        for tensor, strides in zip(self.tensors[:6], self.strides):
            args += [tensor, *strides]
        return args + list(self.tensors[6:])

    def sizes(self) -> list:
        return [self.length, self.height, self.width, self.chans, self.n_dirs, self.rank, self.n_chunks]

    @property
    def n_chunks(self) -> int:
        return -(-self.length // self.chunk)

    def meta(self) -> dict:
        return dict(N=self.n_state, N_PAD=_pow2(self.n_state), R_PAD=_pow2(max(self.rank, 1)), BLOCK_D=self.block_d,
                    K_PER_PROG=self.k_per_prog, CHUNK_T=self.chunk, CROSS=self.cross, PROJ=self.rank > 0,
                    SOFTPLUS=self.softplus)

    @property
    def block_d(self) -> int:
        return min(_BLOCK_D, _pow2(self.chans))

    @property
    def grid(self) -> tuple:
        return (-(-self.chans // self.block_d), self.n_dirs // self.k_per_prog, self.batch)

    def state_buffer(self, *lead: int, zero: bool = False) -> torch.Tensor:
        make = torch.zeros if zero else torch.empty
        return make(*lead, self.chans, _pow2(self.n_state), dtype=torch.float32, device=self.tensors[0].device)

    def forward(self, out: torch.Tensor, out_strides: tuple, save_ckpt: bool, save_last: bool):
        """Runs the forward into ``out``; returns (checkpoints or None, last state (b, K, D, N_PAD) or None)."""
        dummy = _dummy(out.device)
        ckpt = self.state_buffer(self.batch, self.n_dirs, self.n_chunks) if save_ckpt else dummy
        last = self.state_buffer(self.batch, self.n_dirs) if save_last else dummy
        forward_kernel, _ = _kernels()
        forward_kernel[self.grid](*self.common_args(), out, *out_strides, ckpt, last, *self.sizes(), **self.meta(),
                                  SAVE_CKPT=save_ckpt, SAVE_LAST=save_last)
        return (ckpt if save_ckpt else None), (last if save_last else None)

    def backward(self, ckpt, dout, dout_strides, dlast, du, du_strides, ddelta, ddelta_strides):
        """Writes du (and ddelta when R = 0); returns dB, dC (b, K, N, L), dxr (b, K, R, L) or None, dA (K·D, N),
        dD, dbias (K·D,), dW (K, R, D) or None."""
        device = du.device
        f32 = dict(dtype=torch.float32, device=device)
        n, r, b, k, length = self.n_state, self.rank, self.batch, self.n_dirs, self.length
        dB, dC = torch.zeros(b, k, n, length, **f32), torch.zeros(b, k, n, length, **f32)
        dxr = torch.zeros(b, k, r, length, **f32) if r else _dummy(device)
        dA = self.state_buffer(b * k)
        dD, dbias = torch.empty(b, k * self.chans, **f32), torch.empty(b, k * self.chans, **f32)
        dW = torch.empty(b, k, _pow2(r), self.chans, **f32) if r else _dummy(device)
        scratch = self.state_buffer(b, k, self.chunk + 1)
        _, backward_kernel = _kernels()
        backward_kernel[self.grid](*self.common_args(), dout, *dout_strides, ckpt, dlast, scratch, du, *du_strides,
                                   ddelta, *ddelta_strides, dB, dC, dxr, dA, dD, dbias, dW, *self.sizes(),
                                   **self.meta())
        dA = dA.view(b, k * self.chans, -1).sum(0)[:, :n]
        return (dB, dC, dxr if r else None, dA, dD.sum(0), dbias.sum(0), dW.sum(0)[:, :r] if r else None)


def _dummy(device: torch.device) -> torch.Tensor:
    return torch.zeros(1, dtype=torch.float32, device=device)


_NO_STRIDES = (0, 0, 0, 0)


def _channel_strides(t: torch.Tensor, chans_per_dir: int) -> tuple:
    """[b, k, pos, d] strides of a (b, K·D, L) tensor."""
    return (t.stride(0), chans_per_dir * t.stride(1), t.stride(2), t.stride(1))


def _f32(t: Optional[torch.Tensor], size: int, device: torch.device) -> torch.Tensor:
    if t is None:
        return torch.zeros(size, dtype=torch.float32, device=device)
    return t.detach().float().reshape(-1).contiguous()


def _merge_directions(batch: int, chans: int, n_dirs: int) -> int:
    """Directions per program: all of them (merged in place) when batch × channel blocks fill the GPU."""
    blocks = -(-chans // min(_BLOCK_D, _pow2(chans)))
    return n_dirs if batch * blocks >= _MIN_PROGRAMS_MERGED else 1


def _grad_enabled(*tensors) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


# --------------------------------------------------------------------------------------------------
# 1-D selective scan with mamba-ssm's signature
# --------------------------------------------------------------------------------------------------


def _problem_1d(u, delta, A, B, C, D, delta_bias, softplus) -> _Problem:
    batch, chans, length = u.shape
    groups, n_state = B.shape[1], A.shape[1]
    per_group = chans // groups
    device = u.device
    dummy = _dummy(device)
    tensors = (u.detach(), delta.detach(), B.detach(), C.detach(), dummy, dummy, A.detach().float().contiguous(),
               _f32(D, chans, device), _f32(delta_bias, chans, device))
    strides = (_channel_strides(u, per_group), _channel_strides(delta, per_group), B.stride(), C.stride(),
               _NO_STRIDES, (0, 0, 0))
    return _Problem(tensors, strides, batch, groups, length, per_group, n_state, 0, 1, 1, False, softplus, 1, CHUNK)


class _TritonScanFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, delta_bias, softplus, save_ckpt):
        problem = _problem_1d(u, delta, A, B, C, D, delta_bias, softplus)
        out = torch.empty(u.shape, dtype=torch.float32, device=u.device)
        ckpt, last = problem.forward(out, _channel_strides(out, problem.chans), save_ckpt, True)
        if save_ckpt:
            ctx.save_for_backward(u, delta, A, B, C, D, delta_bias, ckpt)
            ctx.softplus, ctx.chunk = softplus, problem.chunk
        last = last[..., : problem.n_state].reshape(u.shape[0], u.shape[1], problem.n_state)
        return out, last

    @staticmethod
    def backward(ctx, dy, dlast):
        u, delta, A, B, C, D, delta_bias, ckpt = ctx.saved_tensors
        problem = _problem_1d(u, delta, A, B, C, D, delta_bias, ctx.softplus)
        problem.chunk = ctx.chunk
        batch, chans, length = u.shape
        groups, per_group, n_state = problem.n_dirs, problem.chans, problem.n_state
        if dy is None:
            dy = torch.zeros(u.shape, dtype=torch.float32, device=u.device)
        dlast4 = problem.state_buffer(batch, groups, zero=True)
        if dlast is not None:
            dlast4[..., :n_state] = dlast.float().view(batch, groups, per_group, n_state)
        du = torch.empty(u.shape, dtype=torch.float32, device=u.device)
        ddelta = torch.empty(u.shape, dtype=torch.float32, device=u.device)
        dB, dC, _, dA, dD, dbias, _ = problem.backward(
            ckpt, dy, _channel_strides(dy, per_group), dlast4, du, _channel_strides(du, per_group), ddelta,
            _channel_strides(ddelta, per_group))
        grads = [du.to(u.dtype), ddelta.to(delta.dtype), dA.to(A.dtype), dB.to(B.dtype), dC.to(C.dtype),
                 None if D is None else dD.to(D.dtype), None if delta_bias is None else dbias.to(delta_bias.dtype)]
        return (*grads, None, None)


def triton_selective_scan(
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
    """Triton selective scan with the semantics of ``selective_scan_reference`` (float32 state and output).

    u, delta: (batch, G·D, L); A: (G·D, N) real; B, C: (batch, G, N, L) or (batch, N, L) (group-major
    channels); D, delta_bias: (G·D,); z: (batch, G·D, L) gate, applied as ``y·silu(z)``. Returns y with u's
    dtype, plus the last state (batch, G·D, N) if ``return_last_state``. CUDA tensors, or CPU tensors under
    ``TRITON_INTERPRET=1``.
    """
    # imported here: selective_scan imports this module
    from .selective_scan import check_scan_operands, finish_kernel_output

    check_triton_tensors(u.device)
    B, C = check_scan_operands(u, delta, A, B, C)
    save_ckpt = _grad_enabled(u, delta, A, B, C, D, delta_bias)
    y, last = _TritonScanFn.apply(u, delta, A, B, C, D, delta_bias, bool(delta_softplus), save_ckpt)
    return finish_kernel_output(y, last, u, z, return_last_state)


# --------------------------------------------------------------------------------------------------
# VMamba 2-D cross selective scan
# --------------------------------------------------------------------------------------------------


def _problem_2d(xf, xdbl, dtw, bias, A, Ds, height, width, softplus=True, k_per_prog=None) -> _Problem:
    """xf (b, L, D) the map in row-major order; xdbl (b, L, K, R+2N) its projections (by position)."""
    batch, length, chans = xf.shape
    n_dirs, rank, n_state = xdbl.shape[2], dtw.shape[2], A.shape[1]
    s_b, s_l, s_k, s_e = xdbl.stride()
    proj = [xdbl[..., :rank], xdbl[..., rank: rank + n_state], xdbl[..., rank + n_state:]]  # views: no copies
    tensors = (xf.detach(), _dummy(xf.device), proj[1].detach(), proj[2].detach(), proj[0].detach(), dtw.detach(),
               A.detach().float().contiguous(), _f32(Ds, n_dirs * chans, xf.device),
               _f32(bias, n_dirs * chans, xf.device))
    bknl = (s_b, s_k, s_e, s_l)
    strides = ((xf.stride(0), 0, xf.stride(1), xf.stride(2)), _NO_STRIDES, bknl, bknl, bknl,
               (dtw.stride(0), dtw.stride(2), dtw.stride(1)))
    if k_per_prog is None:
        k_per_prog = _merge_directions(batch, chans, n_dirs)
    return _Problem(tensors, strides, batch, n_dirs, length, chans, n_state, rank, height, width, True, softplus,
                    k_per_prog, CHUNK)


class _TritonCrossScanFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xf, xdbl, dtw, bias, A, Ds, height, width, save_ckpt):
        problem = _problem_2d(xf, xdbl, dtw, bias, A, Ds, height, width)
        batch, length, chans = xf.shape
        slots = problem.n_dirs // problem.k_per_prog
        out = (torch.zeros if slots == 1 else torch.empty)(batch, slots, length, chans, dtype=torch.float32,
                                                            device=xf.device)
        ckpt, _ = problem.forward(out, out.stride(), save_ckpt, False)
        if save_ckpt:
            ctx.save_for_backward(xf, xdbl, dtw, bias, A, Ds, ckpt)
            ctx.statics = (height, width, problem.k_per_prog, problem.chunk)
        return out[:, 0] if slots == 1 else out.sum(1)

    @staticmethod
    def backward(ctx, dy):
        xf, xdbl, dtw, bias, A, Ds, ckpt = ctx.saved_tensors
        height, width, k_per_prog, chunk = ctx.statics
        problem = _problem_2d(xf, xdbl, dtw, bias, A, Ds, height, width, k_per_prog=k_per_prog)
        problem.chunk = chunk
        batch, length, chans = xf.shape
        slots = problem.n_dirs // k_per_prog
        du = (torch.zeros if slots == 1 else torch.empty)(batch, slots, length, chans, dtype=torch.float32,
                                                           device=xf.device)
        dy_strides = (dy.stride(0), 0, dy.stride(1), dy.stride(2))  # every direction reads the merged gradient
        dB, dC, dxr, dA, dD, dbias, dW = problem.backward(ckpt, dy, dy_strides, problem.state_buffer(
            batch, problem.n_dirs, zero=True), du, du.stride(), _dummy(xf.device), _NO_STRIDES)
        dx = du[:, 0] if slots == 1 else du.sum(1)
        dxdbl = torch.cat([dxr, dB, dC], dim=2).permute(0, 3, 1, 2)  # (b, L, K, R+2N), like xdbl
        return (dx.to(xf.dtype), dxdbl.to(xdbl.dtype), dW.transpose(1, 2).to(dtw.dtype),
                dbias.view(bias.shape).to(bias.dtype), dA.to(A.dtype), dD.to(Ds.dtype), None, None, None)


def triton_cross_selective_scan(
    x: torch.Tensor,
    x_proj_weight: torch.Tensor,
    dt_projs_weight: torch.Tensor,
    dt_projs_bias: torch.Tensor,
    A_logs: torch.Tensor,
    Ds: torch.Tensor,
) -> torch.Tensor:
    """Triton equivalent of ``cross_selective_scan``: x (b, H, W, D) channels-last → (b, H, W, D) float32.

    x_proj_weight (K, R+2N, D), dt_projs_weight (K, D, R), dt_projs_bias (K, D), A_logs (K·D, N), Ds (K·D,).
    The x projection is one matmul on the map (autocast applies to it); the Δ projection runs inside the
    kernel and the kernel reads the map through the four direction index maps.
    """
    from .selective_scan import check_cross_shapes  # here: selective_scan imports this module

    check_triton_tensors(x.device)
    check_cross_shapes(x, x_proj_weight, dt_projs_weight, A_logs)
    n_dirs, n_proj, chans = x_proj_weight.shape
    batch, height, width, _ = x.shape
    xf = x.reshape(batch, height * width, chans)
    xdbl = torch.nn.functional.linear(xf, x_proj_weight.reshape(n_dirs * n_proj, chans))
    xdbl = xdbl.view(batch, height * width, n_dirs, n_proj)
    A = -torch.exp(A_logs.float())
    save_ckpt = _grad_enabled(x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds)
    out = _TritonCrossScanFn.apply(xf, xdbl, dt_projs_weight, dt_projs_bias, A, Ds, height, width, save_ckpt)
    return out.view(batch, height, width, chans)
