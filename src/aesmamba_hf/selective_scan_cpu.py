"""Fused CPU selective scan (numba): forward and backward, plus the fused VMamba 2-D cross scan.

Why it is written the way it is (each point but the last was measured on a 2-core AVX-512 machine):

* Channels-last tiles ``(L, D)`` with the inner loop running over channels, so every loop vectorises
  without horizontal sums; the four VMamba scan directions are index maps ``pos = dirmap[k, t]`` into the
  one spatial map, so the cross-scan/cross-merge never copies, stacks, flips or transposes anything, and
  the Δ projection (rank R) is done inside the kernel, so no (batch, K, L, D) Δ tensor exists.
* Channel indices are unsigned: numba's negative-index wraparound turns vector loads into gathers (14×).
* Work units span whole channel rows where the batch allows (wide units were 1.5-2× faster than 64-wide
  tiles); small batches split the four directions into groups, then the channels.
* ``math.exp`` does not vectorise (no SVML in llvmlite); :func:`_exp2` is a degree-5 polynomial with an
  exponent bit trick (relative error 2e-7) that is *exactly* 1 at 0, otherwise the error compounds over
  thousands of steps. Softplus/sigmoid are built on it (``log1p`` via an atanh series).
* ``error_model='numpy'`` (no divide-by-zero branch), no array views inside ``prange`` bodies (they drop
  the no-alias guarantee), fastmath without ``nnan``/``ninf`` (NaN/inf still propagate).
* The backward saves the state every :data:`CHUNK` steps in the forward and recomputes one chunk at a time
  into a cache-sized tile, then runs the reverse recurrence; gradients of B/C are reduced over the
  channels of a work unit inside the kernel. Nothing of size ``(batch, K*D, N, L)`` is ever allocated.
* The numba thread count follows ``torch.get_num_threads()`` at every call, and torch's count is restored
  afterwards (numba's omp layer can share torch's libgomp and would leave its own count behind).
* On CPUs with AVX-512 the kernels are compiled with 512-bit loops (LLVM tunes Intel's AVX-512 models to
  prefer 256-bit vectors): see :func:`_vector_features` (checked in the machine code; the speed-up is not
  measured yet).

Only same-folder imports: transformers copies this file flat into remote-code checkpoints.
"""

from __future__ import annotations

import os
import warnings
from functools import lru_cache
from typing import Optional

import numpy as np
import torch

from .selective_scan import check_cross_shapes, check_scan_operands, finish_kernel_output

try:
    import numba
    from llvmlite import ir as _llvm_ir
    from numba import njit, prange
    from numba.core import types as _nb_types
    from numba.core.codegen import get_host_cpu_features as _numba_host_features
    from numba.extending import intrinsic

    NUMBA_AVAILABLE = True
except Exception:  # noqa: BLE001 - any import problem simply disables the fused backend
    numba = None
    NUMBA_AVAILABLE = False

__all__ = ["NUMBA_AVAILABLE", "CHUNK", "VECTOR_BITS_ENV", "fused_selective_scan", "fused_cross_selective_scan",
           "scan_forward", "scan_backward", "cross_scan_forward", "cross_scan_backward", "vector_setup"]

VECTOR_BITS_ENV = "AESMAMBA_SCAN_VECTOR_BITS"  # "auto" (default: 512 on AVX-512 CPUs) or "256"


def _vector_features() -> tuple[Optional[str], Optional[int], str]:
    """(numba target features or None to keep numba's, the kernels' vector bits or None if unknown, why).

    LLVM tunes Intel's AVX-512 CPU models (skylake-avx512, icelake-server, sapphirerapids, ...) to prefer
    256-bit vectors (its "prefer-256-bit" flag), so numba compiled the kernels at AVX2 width on those CPUs,
    while the matrix multiplies around them use AVX-512 or AMX; AMD's (znver4, znver5) get 512-bit loops.
    The kernels are mostly independent multiply-adds and exponentials over channels, which 16 lanes and 32
    vector registers suit, so on every CPU with AVX-512 the flag is turned off ("auto") or on ("256", to
    compare or to fall back). The host's own feature list is kept, so nothing the CPU lacks is emitted; a
    ``NUMBA_CPU_FEATURES`` the user set wins.
    """
    choice = os.environ.get(VECTOR_BITS_ENV, "auto").strip().lower()
    if choice not in ("auto", "256"):
        warnings.warn(f"{VECTOR_BITS_ENV}={choice!r} is not 'auto' or '256'; using 'auto'", RuntimeWarning,
                      stacklevel=2)
        choice = "auto"
    if numba.config.CPU_FEATURES is not None:
        return None, None, "NUMBA_CPU_FEATURES is set: numba uses yours"
    if not numba.config.ENABLE_AVX:  # set by the user, or by numba for CPUs whose AVX it distrusts
        return None, 128, "numba's AVX is off (NUMBA_ENABLE_AVX)"
    host = _numba_host_features()  # numba's own list (its AVX rules applied); "" when LLVM cannot read it
    if not host:
        return None, None, "host CPU features unknown"
    flags = host.split(",")
    if "+avx512f" not in flags:
        return None, (256 if "+avx" in flags else 128), "no AVX-512 on this CPU"
    if choice == "256":
        return host + ",+prefer-256-bit", 256, f"{VECTOR_BITS_ENV}=256"
    return host + ",-prefer-256-bit", 512, "AVX-512 CPU: 512-bit loops"


def _configure_vector_width() -> dict:
    """Applies :func:`_vector_features` to numba's CPU target, which reads its features once, when the first
    numba function of the process is defined; this module's kernels are defined right after this call.
    The setting is numba's, process-wide: numba code of other libraries compiled later in this process gets
    the same vector width (a speed choice only: the same results)."""
    features, bits, why = _vector_features()
    if features is not None:
        from numba.core import registry

        if "_toplevel_target_context" in vars(registry.cpu_target):  # another library's numba code came first
            features, bits = None, None
            why = "numba's CPU target was set up before aesmamba_hf's kernels: numba's default"
        else:
            numba.config.CPU_FEATURES = features
    return {"bits": bits, "why": why, "features": features}


def _confirm_vector_width(setup: dict) -> dict:
    """The setup as numba's code generator actually took it (read after the kernels are defined)."""
    features = setup.pop("features")
    if features is None:
        return setup
    try:
        from numba.core import registry

        taken = registry.cpu_target.target_context.codegen()._tm_features
    except Exception:  # noqa: BLE001 - numba internals moved: report what was asked for
        return setup
    if taken != features:
        return {"bits": None, "why": "numba did not take the requested features: numba's default"}
    return setup


def vector_setup() -> dict:
    """How the fused kernels are vectorised in this process: ``{"bits": 512, 256 or None (numba's default for
    this CPU model, not known here), "why": ...}``; benchmarks print it beside their figures."""
    return dict(_VECTOR_SETUP) if NUMBA_AVAILABLE else {"bits": None, "why": "numba is not installed"}


CHUNK = 32  # steps between saved states; one recomputed chunk tile stays in L2 in the backward
_FWD_MAX_WIDTH = 1024  # channels per parallel work unit
_BWD_MAX_WIDTH = 512  # the backward's chunk tiles are 2 × (CHUNK, N, width) floats: keep them near L2
_LOG2E = 1.4426950408889634

if NUMBA_AVAILABLE:
    _VECTOR_SETUP = _configure_vector_width()  # before the first numba function below is defined
    _F32 = np.float32
    _FASTMATH = {"nsz", "contract", "reassoc", "arcp"}  # no nnan/ninf: NaN and inf must propagate
    # 2**f on [-0.5, 0.5]: minimax fit of (2**f - 1) / f with the constant term pinned to 1.
    _P1, _P2, _P3 = _F32(0.6931470036506653), _F32(0.24022242426872253), _F32(0.05550733581185341)
    _P4, _P5 = _F32(0.009671512991189957), _F32(0.001326472731307149)
    _ZERO, _ONE, _TWO = _F32(0.0), _F32(1.0), _F32(2.0)
    _EXP2_MIN = _F32(-126.0)  # 2**-126 is the smallest normal float: below, the result is ~0 anyway
    _EXP2_MAX = _F32(128.0)  # exponent field 255: inf
    _NEG_LOG2E = _F32(-_LOG2E)
    _INV3, _INV5, _INV7, _INV9 = _F32(1 / 3), _F32(1 / 5), _F32(1 / 7), _F32(1 / 9)
    _INV11, _INV13 = _F32(1 / 11), _F32(1 / 13)

    def _jit(parallel: bool = False, inline: str = "never"):
        """``njit`` with on-disk caching when some cache location is writable, silently without else."""

        def wrap(func):
            opts = dict(fastmath=_FASTMATH, error_model="numpy", parallel=parallel, nogil=True, inline=inline)
            if inline == "always":  # inlined helpers are compiled into the kernels (same file → same key)
                return njit(**opts)(func)
            try:
                return njit(cache=True, **opts)(func)
            except Exception:  # noqa: BLE001 - numba raises RuntimeError when no cache dir is writable
                return njit(cache=False, **opts)(func)

        return wrap

    @intrinsic
    def _pow2_of_integral(typingctx, xf):
        """2**xf for a float32 holding an integer in [-126, 128] (128 → inf): build the exponent bits."""
        sig = _nb_types.float32(_nb_types.float32)

        def codegen(context, builder, signature, args):
            f32 = _llvm_ir.FloatType()
            biased = builder.fadd(args[0], _llvm_ir.Constant(f32, 127.0))
            bits = builder.fptosi(builder.fmul(biased, _llvm_ir.Constant(f32, 8388608.0)), _llvm_ir.IntType(32))
            return builder.bitcast(bits, f32)

        return sig, codegen

    @_jit(inline="always")
    def _exp2(x):
        x = min(max(x, _EXP2_MIN), _EXP2_MAX)
        xi = np.rint(x)  # one vrndscale; f in [-0.5, 0.5]
        f = x - xi
        p = _ONE + f * (_P1 + f * (_P2 + f * (_P3 + f * (_P4 + f * _P5))))
        return p * _pow2_of_integral(xi)

    @_jit(inline="always")
    def _log1p_unit(w):
        """log(1 + w) for w in [0, 1]: 2·atanh(w / (2 + w)), |s| ≤ 1/3, accurate for tiny w too."""
        s = w / (_TWO + w)
        s2 = s * s
        series = _INV7 + s2 * (_INV9 + s2 * (_INV11 + s2 * _INV13))
        return _TWO * s * (_ONE + s2 * (_INV3 + s2 * (_INV5 + s2 * series)))

    @_jit(inline="always")
    def _softplus(v):
        return max(v, _ZERO) + _log1p_unit(_exp2(abs(v) * _NEG_LOG2E))

    @_jit(inline="always")
    def _sigmoid(v):
        e = _exp2(abs(v) * _NEG_LOG2E)
        r = _ONE / (_ONE + e)
        return r if v >= _ZERO else e * r

    @_jit(parallel=True)
    def _scan_fwd_kernel(u, delta, bc, dtw, A2, Dv, bias, dirmap, out, ckpt, last, b_off, c_off, softplus,
                         save_ckpt, kgroups, parts, width):
        """Forward over all directions.

        u: (batch, Ku, L, D), Ku ∈ {1, K} (1: every direction reads the same map);
        bc: (batch, L, K, E) per-position projections: the low-rank Δ input at [0, R), B at b_off, C at c_off;
        Δ before bias/softplus is ``bc[..., :R] @ dtw[k]`` with dtw (K, R, D) when R = dtw.shape[1] > 0 (the
        VMamba Δ projection, fused so that no (K, batch, L, D) Δ tensor exists), else read from
        delta (K, batch, L, D); A2 = A·log2(e): (K, N, D); Dv, bias: (K, D); dirmap: (K, L) step → position;
        out: (batch, Ko, L, D), Ko ∈ {1, kgroups, K}: directions that share an output slot are summed
        (the cross-merge); ckpt: (batch, K, ceil(L/CHUNK), N, D) state before each chunk
        (if save_ckpt); last: (batch, K, N, D).
        Work units: batch × kgroups (consecutive directions) × parts (channel ranges of ``width``).
        """
        batch = u.shape[0]
        length = u.shape[2]
        chans = u.shape[3]
        n_dirs = A2.shape[0]
        n_state = A2.shape[1]
        rank = dtw.shape[1]
        k_per_group = n_dirs // kgroups
        for unit in prange(batch * kgroups * parts):
            b = unit // (kgroups * parts)
            kg = (unit // parts) % kgroups
            p = unit % parts
            # unsigned channel indices: numba's negative-index wraparound would turn loads into gathers
            d0 = np.uint64(p * width)
            w = np.uint64(min(width, chans - p * width))
            h = np.empty((n_state, width), dtype=np.float32)
            dl = np.empty(width, dtype=np.float32)
            du = np.empty(width, dtype=np.float32)
            y = np.empty(width, dtype=np.float32)
            for k in range(kg * k_per_group, (kg + 1) * k_per_group):
                ku = (k * u.shape[1]) // n_dirs
                ko = (k * out.shape[1]) // n_dirs
                first = k == kg * k_per_group or out.shape[1] == n_dirs  # first write to this output slot
                for n in range(n_state):
                    for i in range(w):
                        h[n, i] = _ZERO
                for t in range(length):
                    if save_ckpt and t % CHUNK == 0:
                        j = t // CHUNK
                        for n in range(n_state):
                            for i in range(w):
                                ckpt[b, k, j, n, d0 + i] = h[n, i]
                    pos = dirmap[k, t]
                    if rank > 0:
                        for i in range(w):
                            dl[i] = bias[k, d0 + i]
                        for r in range(rank):
                            lo = bc[b, pos, k, r]
                            for i in range(w):
                                dl[i] += lo * dtw[k, r, d0 + i]
                    else:
                        for i in range(w):
                            dl[i] = delta[k, b, pos, d0 + i] + bias[k, d0 + i]
                    for i in range(w):
                        v = dl[i]
                        if softplus:
                            v = _softplus(v)
                        uu = u[b, ku, pos, d0 + i]
                        dl[i] = v
                        du[i] = v * uu
                        y[i] = Dv[k, d0 + i] * uu
                    for n in range(0, n_state - 1, 2):  # two states per pass: half the y traffic
                        b0 = bc[b, pos, k, b_off + n]
                        c0 = bc[b, pos, k, c_off + n]
                        b1 = bc[b, pos, k, b_off + n + 1]
                        c1 = bc[b, pos, k, c_off + n + 1]
                        for i in range(w):
                            h0 = _exp2(dl[i] * A2[k, n, d0 + i]) * h[n, i] + du[i] * b0
                            h1 = _exp2(dl[i] * A2[k, n + 1, d0 + i]) * h[n + 1, i] + du[i] * b1
                            h[n, i] = h0
                            h[n + 1, i] = h1
                            y[i] += h0 * c0 + h1 * c1
                    if n_state % 2 == 1:
                        n = n_state - 1
                        bn = bc[b, pos, k, b_off + n]
                        cn = bc[b, pos, k, c_off + n]
                        for i in range(w):
                            hv = _exp2(dl[i] * A2[k, n, d0 + i]) * h[n, i] + du[i] * bn
                            h[n, i] = hv
                            y[i] += hv * cn
                    if first:  # every direction visits every position once: no zero-filled output needed
                        for i in range(w):
                            out[b, ko, pos, d0 + i] = y[i]
                    else:
                        for i in range(w):
                            out[b, ko, pos, d0 + i] += y[i]
                for n in range(n_state):
                    for i in range(w):
                        last[b, k, n, d0 + i] = h[n, i]

    @_jit(parallel=True)
    def _scan_bwd_kernel(u, delta, bc, dtw, A2, Dv, bias, dirmap, ckpt, dout, dlast, b_off, c_off, softplus,
                         kgroups, parts, width, du_out, ddelta_out, dA_part, dD_part, dbc_part, dbias_part,
                         ddtw_part):
        """Backward of :func:`_scan_fwd_kernel` (same layouts).

        Writes du_out (batch, Ku or kgroups, L, D) (summed over the directions sharing a slot); dA_part (batch, K, N, D)
        (w.r.t. A, not A2); dD_part (batch, K, D); dbc_part (batch, parts, L, K, E): gradients of the
        projections in bc's layout, each a partial sum over the channels of one unit. Gradient of Δ before
        softplus: with a fused Δ projection (R > 0) it is consumed here: dbias_part (batch, K, D),
        ddtw_part (batch, K, R, D) and the low-rank input in dbc_part[..., :R]; otherwise it is written to
        ddelta_out (K, batch, L, D).
        """
        batch = u.shape[0]
        length = u.shape[2]
        chans = u.shape[3]
        n_dirs = A2.shape[0]
        n_state = A2.shape[1]
        rank = dtw.shape[1]
        n_chunks = (length + CHUNK - 1) // CHUNK
        ln2 = _F32(0.6931471805599453)
        k_per_group = n_dirs // kgroups
        for unit in prange(batch * kgroups * parts):
            b = unit // (kgroups * parts)
            kg = (unit // parts) % kgroups
            p = unit % parts
            d0 = np.uint64(p * width)  # unsigned: see the forward kernel
            w = np.uint64(min(width, chans - p * width))
            H = np.empty((CHUNK + 1, n_state, width), dtype=np.float32)  # H[s] = state after s-1 steps
            EA = np.empty((CHUNK, n_state, width), dtype=np.float32)  # exp(Δ·A)
            DL = np.empty((CHUNK, width), dtype=np.float32)  # Δ
            DU = np.empty((CHUNK, width), dtype=np.float32)  # Δ·u
            SG = np.empty((CHUNK, width), dtype=np.float32)  # softplus'
            g = np.empty((n_state, width), dtype=np.float32)  # carried dL/dh
            dAacc = np.empty((n_state, width), dtype=np.float32)
            dWacc = np.empty((max(rank, 1), width), dtype=np.float32)
            gB = np.empty(width, dtype=np.float32)
            dlt = np.empty(width, dtype=np.float32)
            dy = np.empty(width, dtype=np.float32)
            ddr = np.empty(width, dtype=np.float32)
            dDacc = np.empty(width, dtype=np.float32)
            dbacc = np.empty(width, dtype=np.float32)
            for k in range(kg * k_per_group, (kg + 1) * k_per_group):
                ku = (k * u.shape[1]) // n_dirs
                ko = (k * dout.shape[1]) // n_dirs
                kdu = (k * du_out.shape[1]) // n_dirs
                first = k == kg * k_per_group or du_out.shape[1] == n_dirs
                for n in range(n_state):
                    for i in range(w):
                        g[n, i] = dlast[b, k, n, d0 + i]
                        dAacc[n, i] = _ZERO
                for r in range(rank):
                    for i in range(w):
                        dWacc[r, i] = _ZERO
                for i in range(w):
                    dDacc[i] = _ZERO
                    dbacc[i] = _ZERO
                for j in range(n_chunks - 1, -1, -1):
                    t0 = j * CHUNK
                    tl = min(CHUNK, length - t0)
                    # recompute the chunk's states from its checkpoint
                    for n in range(n_state):
                        for i in range(w):
                            H[0, n, i] = ckpt[b, k, j, n, d0 + i]
                    for s in range(tl):
                        pos = dirmap[k, t0 + s]
                        if rank > 0:
                            for i in range(w):
                                DL[s, i] = bias[k, d0 + i]
                            for r in range(rank):
                                lo = bc[b, pos, k, r]
                                for i in range(w):
                                    DL[s, i] += lo * dtw[k, r, d0 + i]
                        else:
                            for i in range(w):
                                DL[s, i] = delta[k, b, pos, d0 + i] + bias[k, d0 + i]
                        for i in range(w):
                            v = DL[s, i]
                            if softplus:
                                SG[s, i] = _sigmoid(v)
                                v = _softplus(v)
                            else:
                                SG[s, i] = _ONE
                            DL[s, i] = v
                            DU[s, i] = v * u[b, ku, pos, d0 + i]
                        for n in range(n_state):
                            bn = bc[b, pos, k, b_off + n]
                            for i in range(w):
                                e = _exp2(DL[s, i] * A2[k, n, d0 + i])
                                EA[s, n, i] = e
                                H[s + 1, n, i] = e * H[s, n, i] + DU[s, i] * bn
                    # reverse recurrence through the chunk
                    for s in range(tl - 1, -1, -1):
                        pos = dirmap[k, t0 + s]
                        for i in range(w):
                            dy[i] = dout[b, ko, pos, d0 + i]
                            dDacc[i] += dy[i] * u[b, ku, pos, d0 + i]
                            gB[i] = _ZERO
                            dlt[i] = _ZERO
                        for n in range(n_state):
                            bn = bc[b, pos, k, b_off + n]
                            cn = bc[b, pos, k, c_off + n]
                            sB = _ZERO
                            sC = _ZERO
                            for i in range(w):
                                a2 = A2[k, n, d0 + i]
                                dA = EA[s, n, i]
                                gt = g[n, i] + cn * dy[i]
                                sC += H[s + 1, n, i] * dy[i]
                                sB += gt * DU[s, i]
                                gB[i] += gt * bn
                                wgt = gt * H[s, n, i] * dA
                                dlt[i] += wgt * a2
                                dAacc[n, i] += wgt * DL[s, i]
                                g[n, i] = gt * dA
                            dbc_part[b, p, pos, k, b_off + n] = sB
                            dbc_part[b, p, pos, k, c_off + n] = sC
                        for i in range(w):
                            ddr[i] = (u[b, ku, pos, d0 + i] * gB[i] + dlt[i] * ln2) * SG[s, i]  # A2 = A/ln2
                        if first:
                            for i in range(w):
                                du_out[b, kdu, pos, d0 + i] = Dv[k, d0 + i] * dy[i] + DL[s, i] * gB[i]
                        else:
                            for i in range(w):
                                du_out[b, kdu, pos, d0 + i] += Dv[k, d0 + i] * dy[i] + DL[s, i] * gB[i]
                        if rank > 0:
                            for i in range(w):
                                dbacc[i] += ddr[i]
                            for r in range(rank):
                                lo = bc[b, pos, k, r]
                                acc = _ZERO
                                for i in range(w):
                                    dWacc[r, i] += ddr[i] * lo
                                    acc += ddr[i] * dtw[k, r, d0 + i]
                                dbc_part[b, p, pos, k, r] = acc
                        else:
                            for i in range(w):
                                ddelta_out[k, b, pos, d0 + i] = ddr[i]
                for n in range(n_state):
                    for i in range(w):
                        dA_part[b, k, n, d0 + i] = dAacc[n, i]
                for i in range(w):
                    dD_part[b, k, d0 + i] = dDacc[i]
                if rank > 0:
                    for i in range(w):
                        dbias_part[b, k, d0 + i] = dbacc[i]
                    for r in range(rank):
                        for i in range(w):
                            ddtw_part[b, k, r, d0 + i] = dWacc[r, i]

    _VECTOR_SETUP = _confirm_vector_width(_VECTOR_SETUP)  # the kernels above made numba set up its target


def _num_threads() -> int:
    return max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))


def _planning_threads() -> int:
    """Threads the work is split for (tests override it to exercise every split)."""
    return _num_threads()


def _work_units(batch: int, chans: int, n_dirs: int, merge: bool, threads: int,
                max_width: int) -> tuple[int, int, int]:
    """Split the work into ``batch × kgroups × parts`` units; returns (kgroups, parts, width).

    Wide units are fastest (measured: whole channel rows beat 64-wide tiles by 1.5-2×, also in the
    backward), so channels are split only when batch × direction groups cannot occupy the threads.
    Direction groups are free when every direction has its own output; when they are merged into one map,
    each group needs its own output buffer (summed afterwards), so it is used only for small batches.
    """
    if merge:
        kgroups = n_dirs
        for cand in (g for g in range(1, n_dirs + 1) if n_dirs % g == 0):
            if (batch * cand) % threads == 0 or batch * cand >= 4 * threads:
                kgroups = cand
                break
    else:
        kgroups = n_dirs
    parts = -(-chans // max_width)
    while batch * kgroups * parts < threads and parts * 8 < chans:
        parts += 1
    width = -(-chans // parts)
    width = -(-width // 8) * 8
    return kgroups, -(-chans // width), width


def _null_cache_type():
    from numba.core.caching import NullCache

    return NullCache


def _disable_cache(kernel) -> None:
    kernel._cache = _null_cache_type()()


def _launch(kernel, *args) -> None:
    torch_threads = torch.get_num_threads()
    numba.set_num_threads(_num_threads())
    try:
        kernel(*args)
    except Exception as err:
        # a cache that cannot be written or read back (read-only or vanished directory, a module imported
        # under a name that cannot be re-imported) must never break the scan: retry once without cache
        if isinstance(kernel._cache, _null_cache_type()):
            raise
        warnings.warn(f"selective_scan_cpu: numba cache disabled ({type(err).__name__}: {err})", RuntimeWarning,
                      stacklevel=3)
        _disable_cache(kernel)
        kernel(*args)
    finally:
        # numba's omp layer may share torch's libgomp and leaves its own thread count in the OpenMP state
        # after a region (measured: torch.set_num_threads(1) silently became 2, making torch ops 3-4×
        # slower on a loaded machine), so torch's setting is restored after every launch
        if torch.get_num_threads() != torch_threads:
            torch.set_num_threads(torch_threads)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


@lru_cache(maxsize=8)
def _dummy(ndim: int) -> np.ndarray:
    """Placeholder for an argument a kernel call does not use (same ndim: one compiled signature)."""
    return np.zeros((1,) * ndim, dtype=np.float32)


class _Problem:
    """Kernel operands in the kernel layouts (see :func:`_scan_fwd_kernel`), shared by forward and backward.

    u4 (batch, Ku, L, D); delta4 (K, batch, L, D) or None when Δ is projected in the kernel from bc[..., :R]
    with dtw (K, R, D); bc (batch, L, K, E); A2 (K, N, D); Dv, bias (K, D); dirmap (K, L); merge: the
    directions are summed into one output map.
    """

    def __init__(self, u4, delta4, bc, dtw, A2, Dv, bias, dirmap, merge, b_off, c_off, softplus):
        self.u4, self.delta4, self.bc, self.dtw, self.A2 = u4, delta4, bc, dtw, A2
        self.Dv, self.bias, self.dirmap, self.merge = Dv, bias, dirmap, merge
        self.b_off, self.c_off, self.softplus = b_off, c_off, softplus

    def tensors(self) -> tuple:
        """The tensors, for ``ctx.save_for_backward`` (so that checkpointing hooks see them)."""
        return self.u4, self.delta4, self.bc, self.dtw, self.A2, self.Dv, self.bias

    def statics(self) -> tuple:
        """Everything else: the (cached, shared) direction map and the flags."""
        return self.dirmap, self.merge, self.b_off, self.c_off, self.softplus

    def _common(self):
        return (_np(self.u4), _dummy(4) if self.delta4 is None else _np(self.delta4), _np(self.bc), _np(self.dtw),
                _np(self.A2), _np(self.Dv), _np(self.bias), _np(self.dirmap))

    def forward(self, save_ckpt: bool):
        """Returns out (batch, 1 if merge else K, L, D), the checkpoints (or None), last state (batch, K, N, D)."""
        batch, _, length, chans = self.u4.shape
        n_dirs, n_state = self.A2.shape[0], self.A2.shape[1]
        kgroups, parts, width = _work_units(batch, chans, n_dirs, self.merge, _planning_threads(), _FWD_MAX_WIDTH)
        out = torch.empty(batch, kgroups if self.merge else n_dirs, length, chans, dtype=torch.float32)
        last = torch.empty(batch, n_dirs, n_state, chans, dtype=torch.float32)
        ckpt = (torch.empty(batch, n_dirs, -(-length // CHUNK), n_state, chans, dtype=torch.float32)
                if save_ckpt else None)
        _launch(_scan_fwd_kernel, *self._common(), _np(out), _dummy(5) if ckpt is None else _np(ckpt), _np(last),
                self.b_off, self.c_off, self.softplus, save_ckpt, kgroups, parts, width)
        if self.merge and kgroups > 1:
            out = out.sum(1, keepdim=True)
        return out, ckpt, last

    def backward(self, ckpt, dout4, dlast):
        """Returns du4 (like u4), dbc (batch, L, K, E), dA (K, N, D), dD (K, D), and either ddelta
        (K, batch, L, D) (no fused projection) or (dbias (K, D), ddtw (K, R, D))."""
        batch, _, length, chans = self.u4.shape
        n_dirs, n_state = self.A2.shape[0], self.A2.shape[1]
        rank, n_proj = self.dtw.shape[1], self.bc.shape[3]
        kgroups, parts, width = _work_units(batch, chans, n_dirs, self.merge, _planning_threads(), _BWD_MAX_WIDTH)
        du4 = torch.empty(batch, kgroups if self.merge else n_dirs, length, chans, dtype=torch.float32)
        ddelta = torch.empty(n_dirs, batch, length, chans, dtype=torch.float32) if rank == 0 else None
        dA_part = torch.empty(batch, n_dirs, n_state, chans, dtype=torch.float32)
        dD_part = torch.empty(batch, n_dirs, chans, dtype=torch.float32)
        dbc_part = torch.empty(batch, parts, length, n_dirs, n_proj, dtype=torch.float32)
        dbias_part = torch.empty(batch, n_dirs, chans, dtype=torch.float32) if rank else None
        ddtw_part = torch.empty(batch, n_dirs, rank, chans, dtype=torch.float32) if rank else None
        _launch(_scan_bwd_kernel, *self._common(), _np(ckpt), _np(dout4), _np(dlast), self.b_off, self.c_off,
                self.softplus, kgroups, parts, width, _np(du4), _dummy(4) if ddelta is None else _np(ddelta),
                _np(dA_part), _np(dD_part), _np(dbc_part), _dummy(3) if dbias_part is None else _np(dbias_part),
                _dummy(4) if ddtw_part is None else _np(ddtw_part))
        if self.merge and kgroups > 1:
            du4 = du4.sum(1, keepdim=True)
        dbc = dbc_part[:, 0] if parts == 1 else dbc_part.sum(1)
        extra = (ddelta,) if rank == 0 else (dbias_part.sum(0), ddtw_part.sum(0))
        return (du4, dbc, dA_part.sum(0), dD_part.sum(0), *extra)


def _f32c(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to(torch.float32).contiguous()


def _a2_layout(A: torch.Tensor, n_dirs: int) -> torch.Tensor:
    """A (K·D, N) → A·log2(e) as (K, N, D)."""
    n_state = A.shape[1]
    return (_f32c(A) * _LOG2E).view(n_dirs, -1, n_state).transpose(1, 2).contiguous()


@lru_cache(maxsize=64)
def _identity_map(n_dirs: int, length: int) -> torch.Tensor:
    with torch.inference_mode(False):  # cached across calls: never an inference tensor
        return torch.arange(length, dtype=torch.int64).expand(n_dirs, length).contiguous()


@lru_cache(maxsize=64)
def _cross_map(height: int, width: int) -> torch.Tensor:
    """Step → row-major position for VMamba's four directions: rows, columns, rows reversed, columns
    reversed."""
    with torch.inference_mode(False):  # cached across calls: never an inference tensor
        rows = torch.arange(height * width, dtype=torch.int64)
        cols = torch.arange(height * width, dtype=torch.int64).view(height, width).t().reshape(-1)
        return torch.stack([rows, cols, rows.flip(0), cols.flip(0)]).contiguous()


# --------------------------------------------------------------------------------------------------
# 1-D selective scan with mamba-ssm's signature
# --------------------------------------------------------------------------------------------------


def _problem_1d(u, delta, A, B, C, D, delta_bias, softplus) -> _Problem:
    """(b, G·D, L) → channels-last per group; B/C (b, G, N, L) → (b, L, G, 2N)."""
    batch, chans, length = u.shape
    n_groups, n_state = B.shape[1], A.shape[1]
    d = chans // n_groups
    u4 = _f32c(u.reshape(batch, n_groups, d, length).transpose(2, 3))
    delta4 = _f32c(delta.reshape(batch, n_groups, d, length).permute(1, 0, 3, 2))
    bc = _f32c(torch.cat([B.detach().float(), C.detach().float()], dim=2).permute(0, 3, 1, 2))
    no_projection = torch.zeros(n_groups, 0, 1)
    return _Problem(u4, delta4, bc, no_projection, _a2_layout(A, n_groups), _f32c(D).view(n_groups, d),
                    _f32c(delta_bias).view(n_groups, d), _identity_map(n_groups, length), False, 0, n_state, softplus)


def _unpack_1d(t4: torch.Tensor) -> torch.Tensor:
    """(b, G, L, D) → (b, G·D, L)."""
    batch, n_groups, length, d = t4.shape
    return t4.transpose(2, 3).reshape(batch, n_groups * d, length)


def _empty_ckpt() -> torch.Tensor:
    return torch.empty(0, dtype=torch.float32)


def scan_forward(u, delta, A, B, C, D, delta_bias, softplus: bool, save_ckpt: bool):
    """Kernel side of ``aesmamba::selective_scan``: returns y (b, G·D, L), last (b, G·D, N) and the
    checkpoints (b, G, ceil(L/CHUNK), N, D) (empty unless ``save_ckpt``), all float32."""
    problem = _problem_1d(u, delta, A, B, C, D, delta_bias, softplus)
    out, ckpt, last = problem.forward(save_ckpt=save_ckpt)
    last = last.transpose(2, 3).reshape(u.shape[0], u.shape[1], A.shape[1])
    return _unpack_1d(out), last, ckpt if save_ckpt else _empty_ckpt()


def scan_backward(dy, dlast, u, delta, A, B, C, D, delta_bias, ckpt, softplus: bool):
    """Kernel side of ``aesmamba::selective_scan_backward``: gradients of (u, delta, A, B, C, D, delta_bias)."""
    problem = _problem_1d(u, delta, A, B, C, D, delta_bias, softplus)
    if ckpt.numel() == 0:  # the forward kept nothing (traced without grad): recompute the checkpoints
        ckpt = problem.forward(save_ckpt=True)[1]
    batch, n_groups, length, d = problem.u4.shape
    n_state = problem.A2.shape[1]
    dout4 = _f32c(dy.reshape(batch, n_groups, d, length).transpose(2, 3))
    dlast4 = _f32c(dlast.reshape(batch, n_groups, d, n_state).transpose(2, 3))
    du4, dbc, dA, dD, ddelta = problem.backward(ckpt, dout4, dlast4)
    ddelta = ddelta.permute(1, 0, 3, 2).reshape(batch, n_groups * d, length)
    dbc = dbc.permute(0, 2, 3, 1)  # (b, G, 2N, L)
    return (_unpack_1d(du4), ddelta, dA.transpose(1, 2).reshape(n_groups * d, n_state),
            dbc[:, :, :n_state].contiguous(), dbc[:, :, n_state:].contiguous(), dD.reshape(-1), ddelta.sum((0, 2)))


def fused_selective_scan(
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
    """Fused CPU selective scan with the semantics of ``selective_scan_reference`` (float32 compute).

    u, delta: (batch, G·D, L); A: (G·D, N); B, C: (batch, G, N, L) or (batch, N, L) (group-major
    channels); D, delta_bias: (G·D,); z: (batch, G·D, L) gate, applied as ``y·silu(z)``.
    Returns y with u's dtype, plus the last state (batch, G·D, N) if ``return_last_state``.
    Runs as the registered op ``aesmamba::selective_scan`` (traceable by torch.compile / torch.export).
    """
    from .selective_scan_ops import selective_scan_op

    if not NUMBA_AVAILABLE:
        raise RuntimeError("scan backend 'fused' needs numba; install numba or use backend='unrolled'")
    if u.device.type != "cpu":
        raise RuntimeError(f"scan backend 'fused' runs on CPU tensors, got device {u.device}")
    B, C = check_scan_operands(u, delta, A, B, C)
    D = u.new_zeros(u.shape[1], dtype=torch.float32) if D is None else D
    delta_bias = u.new_zeros(u.shape[1], dtype=torch.float32) if delta_bias is None else delta_bias
    # the kernel computes in float32: bf16/fp16 operands (half weights, autocast) are cast up here, where
    # autograd casts their gradients back, so the op only ever sees float32
    operands = (t.float() for t in (u, delta, A, B, C, D, delta_bias))
    y, last = selective_scan_op(*operands, bool(delta_softplus))
    return finish_kernel_output(y, last, u, z, return_last_state)


# --------------------------------------------------------------------------------------------------
# VMamba 2-D cross selective scan (cross scan → scan → cross merge), fused
# --------------------------------------------------------------------------------------------------


def _problem_2d(x, xdbl, dt_projs_weight, dt_projs_bias, A, Ds) -> _Problem:
    """x (b, H, W, D) and its projection xdbl (b, H, W, K·E) by position; Δ is projected inside the kernel."""
    batch, height, width, chans = x.shape
    n_dirs, _, rank = dt_projs_weight.shape
    n_state = A.shape[1]
    xf = _f32c(x).view(batch, 1, height * width, chans)
    bc = _f32c(xdbl).view(batch, height * width, n_dirs, -1)
    dtw = _f32c(dt_projs_weight.transpose(1, 2))  # (K, R, D)
    return _Problem(xf, None, bc, dtw, _a2_layout(A, n_dirs), _f32c(Ds).view(n_dirs, chans),
                    _f32c(dt_projs_bias).view(n_dirs, chans), _cross_map(height, width), True, rank,
                    rank + n_state, True)


def cross_scan_forward(x, xdbl, dt_projs_weight, dt_projs_bias, A, Ds, save_ckpt: bool):
    """Kernel side of ``aesmamba::cross_selective_scan``: y (b, H, W, D) float32 and the checkpoints
    (b, K, ceil(L/CHUNK), N, D) (empty unless ``save_ckpt``)."""
    out, ckpt, _ = _problem_2d(x, xdbl, dt_projs_weight, dt_projs_bias, A, Ds).forward(save_ckpt=save_ckpt)
    return out.view(x.shape), ckpt if save_ckpt else _empty_ckpt()


def cross_scan_backward(dy, x, xdbl, dt_projs_weight, dt_projs_bias, A, Ds, ckpt):
    """Kernel side of ``aesmamba::cross_selective_scan_backward``: gradients of (x through the scan input
    only, xdbl, dt_projs_weight, dt_projs_bias, A, Ds); the x projection's own gradient is autograd's."""
    problem = _problem_2d(x, xdbl, dt_projs_weight, dt_projs_bias, A, Ds)
    if ckpt.numel() == 0:  # the forward kept nothing (traced without grad): recompute the checkpoints
        ckpt = problem.forward(save_ckpt=True)[1]
    batch, _, length, chans = problem.u4.shape
    n_dirs, n_state = problem.dtw.shape[0], problem.A2.shape[1]
    dout4 = _f32c(dy).view(batch, 1, length, chans)
    dlast = torch.zeros(batch, n_dirs, n_state, chans)
    du4, dxdbl, dA, dD, dbias, ddtw = problem.backward(ckpt, dout4, dlast)
    return (du4.view(x.shape), dxdbl.view(xdbl.shape), ddtw.transpose(1, 2).contiguous(), dbias,
            dA.transpose(1, 2).reshape(n_dirs * chans, n_state), dD.reshape(-1))


def fused_cross_selective_scan(
    x: torch.Tensor,
    x_proj_weight: torch.Tensor,
    dt_projs_weight: torch.Tensor,
    dt_projs_bias: torch.Tensor,
    A_logs: torch.Tensor,
    Ds: torch.Tensor,
) -> torch.Tensor:
    """Fused equivalent of ``cross_selective_scan``: x (b, H, W, D) channels-last → (b, H, W, D) float32.

    x_proj_weight (K, R+2N, D), dt_projs_weight (K, D, R), dt_projs_bias (K, D), A_logs (K·D, N), Ds (K·D,).
    The x projection runs as one matmul on the spatial map (autograd's), the rest as the registered op
    ``aesmamba::cross_selective_scan``: Δ projected inside the kernel, the four directions read through
    index maps (no cross-scan/merge copies).
    """
    from .selective_scan_ops import cross_selective_scan_op

    if not NUMBA_AVAILABLE:
        raise RuntimeError("scan backend 'fused' needs numba; install numba or use backend='unrolled'")
    if x.device.type != "cpu":
        raise RuntimeError(f"scan backend 'fused' runs on CPU tensors, got device {x.device}")
    check_cross_shapes(x, x_proj_weight, dt_projs_weight, A_logs)
    x = x.float()
    # under autocast this matmul comes out bf16/fp16, as the other backends' projection does; the op, like
    # every scan backend, then computes in float32 on float32 operands (autograd casts the gradients back)
    xdbl = torch.nn.functional.linear(x, x_proj_weight.float().flatten(0, 1))  # (b, H, W, K·E), by position
    return cross_selective_scan_op(x, xdbl.float(), dt_projs_weight.float(), dt_projs_bias.float(),
                                   -torch.exp(A_logs.float()), Ds.float())
