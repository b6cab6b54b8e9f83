"""The fused scans as registered torch ops: opcheck, torch.compile(fullgraph=True), torch.export, dispatch.

Tiny models here; the default V and F models (real sizes, random weights) are in the slow tests.
"""

from __future__ import annotations

import pytest
import torch

from aesmamba_hf import selective_scan as ss
from aesmamba_hf import selective_scan_cpu as sscpu
from aesmamba_hf import selective_scan_ops as ops

pytestmark = pytest.mark.skipif(not sscpu.NUMBA_AVAILABLE, reason="numba is not installed")


def _cross_args(batch=2, height=3, width=5, d=8, n=4, rank=2, seed=0, save_ckpt=True):
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).requires_grad_()

    x = rnd(batch, height, width, d)
    xdbl = rnd(batch, height, width, 4 * (rank + 2 * n), scale=0.5)
    A = (-torch.rand(4 * d, n, generator=g) * 2 - 0.1).requires_grad_()
    return (x, xdbl, rnd(4, d, rank, scale=0.5), rnd(4, d, scale=0.5), A, rnd(4 * d), save_ckpt)


def _scan_args(batch=2, groups=2, d=4, n=3, length=37, seed=0, save_ckpt=True):
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).requires_grad_()

    chans = groups * d
    A = (-torch.rand(chans, n, generator=g) * 2 - 0.1).requires_grad_()
    return (rnd(batch, chans, length), rnd(batch, chans, length), A, rnd(batch, groups, n, length),
            rnd(batch, groups, n, length), rnd(chans), rnd(chans, scale=0.5), True, save_ckpt)


def test_checkpoint_interval_matches_the_kernels():
    assert ops.CHUNK == sscpu.CHUNK


@pytest.mark.parametrize("save_ckpt", [True, False])
def test_opcheck_cross_selective_scan(save_ckpt):
    """Schema, fake (meta) implementation and autograd registration agree with the real kernel."""
    args = _cross_args(height=5, width=7, save_ckpt=save_ckpt)  # L = 35: two checkpoint chunks
    torch.library.opcheck(torch.ops.aesmamba.cross_selective_scan, args,
                          test_utils=("test_schema", "test_faketensor", "test_autograd_registration"))


@pytest.mark.parametrize("save_ckpt", [True, False])
def test_opcheck_selective_scan(save_ckpt):
    torch.library.opcheck(torch.ops.aesmamba.selective_scan, _scan_args(save_ckpt=save_ckpt),
                          test_utils=("test_schema", "test_faketensor", "test_autograd_registration"))


def test_backward_without_saved_checkpoints_recomputes_them():
    """A forward that kept no checkpoints (traced without grad) still gives the same gradients."""
    grads = []
    for save in (True, False):
        args = _cross_args(save_ckpt=save)
        y, _ = torch.ops.aesmamba.cross_selective_scan(*args)
        grads.append(torch.autograd.grad(y.square().sum(), args[:6]))
    for with_ckpt, recomputed in zip(*grads):
        torch.testing.assert_close(recomputed, with_ckpt, rtol=0, atol=0)


def _tiny_vmamba():
    from aesmamba_hf import VMambaConfig, VMambaModel

    torch.manual_seed(0)
    return VMambaModel(VMambaConfig(embed_dim=8, depths=[1, 1], d_state=4, scan_backend="auto"))


def test_compile_fullgraph_matches_eager_forward_and_backward():
    model = _tiny_vmamba().train()
    pixels = torch.randn(2, 3, 20, 28)  # odd, non-square maps: 5×7 then 2×3
    eager = model(pixels).pooler_output
    eager_grads = torch.autograd.grad(eager.square().sum(), list(model.parameters()))
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    got = compiled(pixels).pooler_output
    got_grads = torch.autograd.grad(got.square().sum(), list(model.parameters()))
    torch.testing.assert_close(got, eager, rtol=1e-5, atol=1e-5)
    for g, want in zip(got_grads, eager_grads):
        torch.testing.assert_close(g, want, rtol=1e-5, atol=1e-6)


def test_export_contains_the_op_and_matches_eager_with_a_dynamic_batch():
    model = _tiny_vmamba().eval()
    pixels = torch.randn(2, 3, 20, 28)
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(model, (pixels,), dynamic_shapes={"pixel_values": {0: batch}})
    targets = {str(node.target) for node in program.graph.nodes}
    assert "aesmamba.cross_selective_scan.default" in targets
    for size in (2, 3):
        x = torch.randn(size, 3, 20, 28)
        with torch.no_grad():
            want = model(x).pooler_output
        torch.testing.assert_close(program.module()(x).pooler_output, want, rtol=1e-5, atol=1e-5)


def test_auto_picks_the_op_on_cpu_and_the_pure_tensor_scan_under_onnx_export(monkeypatch):
    cpu = torch.device("cpu")
    assert ss.resolve_backend("auto", cpu) == "fused"
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
    assert ss.resolve_backend("auto", cpu) == "unrolled"
    assert ss.resolve_backend("fused", cpu) == "fused"  # an explicit choice is kept


def _default_model(variant):
    from aesmamba_hf import AesMambaForAestheticAssessment
    from aesmamba_hf.registry import variant_config

    torch.manual_seed(0)
    return AesMambaForAestheticAssessment(variant_config(variant)).eval()


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["aesmamba-v", "aesmamba-f"])
def test_default_models_export_and_compile_like_eager(variant):
    model = _default_model(variant)
    pixels = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = model(pixel_values=pixels)
    program = torch.export.export(model, (), {"pixel_values": pixels})
    exported = program.module()(pixel_values=pixels)
    with torch.no_grad():
        compiled = torch.compile(model, fullgraph=True)(pixel_values=pixels)
    for key in ("scores", "integrated_features"):
        torch.testing.assert_close(exported[key], want[key], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(compiled[key], want[key], rtol=1e-5, atol=1e-5)


def test_tiny_model_runs_the_fused_op_under_cpu_bf16_autocast():
    """bf16 activations (autocast) and bf16 operands are cast up for the float32 kernel, gradients come back."""
    from aesmamba_hf import AesMambaConfig, AesMambaForAestheticAssessment

    torch.manual_seed(0)
    config = AesMambaConfig.tiny(task="V")
    config.vision_config.scan_backend = "fused"
    model = AesMambaForAestheticAssessment(config).eval()
    pixels = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model(pixel_values=pixels)["integrated_features"]
    leaf = pixels.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = model(pixel_values=leaf)["integrated_features"]
    got.float().sum().backward()
    # bf16 keeps 8 bits of mantissa: 3 % of the feature scale is bf16 rounding through the tiny network, while a
    # broken scan (wrong layout, lost direction) moves the features by their own size
    assert (got.float() - want).abs().max() <= 0.03 * want.abs().max()
    assert leaf.grad is not None and torch.isfinite(leaf.grad).all()


def test_fused_scans_take_bf16_operands_and_answer_like_float32():
    args32 = [a.detach() if isinstance(a, torch.Tensor) else a for a in _scan_args(save_ckpt=False)[:7]]
    want = ss.selective_scan_fn(*args32[:6], delta_bias=args32[6], delta_softplus=True, backend="fused")
    args16 = [a.bfloat16().requires_grad_() for a in args32]
    got = ss.selective_scan_fn(*args16[:6], delta_bias=args16[6], delta_softplus=True, backend="fused")
    assert got.dtype == torch.bfloat16  # u's dtype, as the reference and chunked scans return
    got.float().sum().backward()
    assert all(a.grad.dtype == torch.bfloat16 for a in args16)
    # the operands themselves were rounded to bf16: compare at bf16's relative precision (2^-8) of the output scale
    assert (got.float() - want).abs().max() <= 2**-8 * 8 * want.abs().max()
