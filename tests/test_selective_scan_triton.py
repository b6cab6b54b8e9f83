"""The Triton selective scan (issue 22), run on CPU tensors through Triton's interpreter.

How interpreter mode is switched on, robustly: ``triton.jit`` chooses compiled or interpreted code when it
wraps a function, reading ``TRITON_INTERPRET`` at that moment, not when triton is imported.
``selective_scan_triton`` wraps its kernels at the first call in each mode (one cached pair per mode,
chosen from ``os.environ`` at every call), so the variable only has to be set while a test runs. The
autouse fixture below sets it with ``monkeypatch`` for each test and removes it afterwards: the result
does not depend on which module imported triton or aesmamba_hf first, and other test modules never see
the variable. The tests call the public functions (``selective_scan_fn`` / ``cross_selective_scan`` with
``backend="triton"``), i.e. the path users call.

The interpreter runs every Triton op as a NumPy call, so shapes are tiny; the chunk length and the
channel block are shrunk so that several chunks (with a partial last one) and several channel blocks
(with a masked last one) are exercised. Every test name contains "triton" (``pytest -k triton``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from aesmamba_hf import selective_scan as scan
from aesmamba_hf import selective_scan_triton as triton_scan

pytestmark = pytest.mark.skipif(not triton_scan.TRITON_AVAILABLE, reason="triton is not installed")

REPO = Path(__file__).resolve().parents[1]
VALUE_TOL, GRAD_TOL = 1e-5, 1e-4  # fp32: max |error| / max |reference|, per output and per gradient


@pytest.fixture(autouse=True)
def interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setattr(triton_scan, "CHUNK", 3)  # several chunks, the last one partial
    monkeypatch.setattr(triton_scan, "_BLOCK_D", 2)  # several channel blocks, the last one masked


def rel_err(value: torch.Tensor, reference: torch.Tensor) -> float:
    value, reference = value.detach().double(), reference.detach().double()
    return ((value - reference).abs().max() / reference.abs().max().clamp_min(1e-30)).item()


def scan_1d_inputs(batch=1, groups=2, per_group=3, n_state=3, length=7, seed=0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    chans = groups * per_group
    return {
        "u": torch.randn(batch, chans, length, generator=g, dtype=torch.float64),
        "delta": torch.randn(batch, chans, length, generator=g, dtype=torch.float64) * 0.5,
        "A": -torch.exp(torch.randn(chans, n_state, generator=g, dtype=torch.float64)),
        "B": torch.randn(batch, groups, n_state, length, generator=g, dtype=torch.float64),
        "C": torch.randn(batch, groups, n_state, length, generator=g, dtype=torch.float64),
        "D": torch.randn(chans, generator=g, dtype=torch.float64),
        "z": torch.randn(batch, chans, length, generator=g, dtype=torch.float64),
        "delta_bias": torch.randn(chans, generator=g, dtype=torch.float64) * 0.5,
    }


def run_1d(inputs: dict, backend: str, dtype: torch.dtype, **kwargs):
    leaves = {k: v.to(dtype).requires_grad_() for k, v in inputs.items()}
    y, last = scan.selective_scan_fn(**leaves, delta_softplus=True, return_last_state=True, backend=backend, **kwargs)
    weight = torch.linspace(-1, 2, y.numel(), dtype=torch.float64).view_as(y)
    loss = (y * weight.to(y.dtype)).sum() + (last * 0.5).sum()
    return y, last, dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values()))))


def assert_matches(result, reference, value_tol=VALUE_TOL, grad_tol=GRAD_TOL):
    *values, grads = result
    *ref_values, ref_grads = reference
    for value, ref in zip(values, ref_values):
        assert torch.isfinite(value).all()
        assert rel_err(value, ref) < value_tol
    assert grads.keys() == ref_grads.keys()
    for name in ref_grads:
        assert torch.isfinite(grads[name]).all(), name
        assert rel_err(grads[name], ref_grads[name]) < grad_tol, name


def test_triton_selective_scan_matches_reference_values_and_gradients():
    inputs = scan_1d_inputs()  # odd length 7, two groups, 3 channels per group (blocks of 2)
    assert_matches(run_1d(inputs, "triton", torch.float32), run_1d(inputs, "reference", torch.float64))


def test_triton_selective_scan_large_decays_one_group():
    inputs = scan_1d_inputs(groups=1, per_group=3, n_state=2, length=5, seed=1)
    inputs["A"] = inputs["A"] * 60  # exp(Δ·A) underflows to 0 for most steps
    inputs["delta"][..., ::2] += 25  # softplus' linear branch (x > 20)
    inputs["delta"][..., 1] -= 40  # and exp(-|x|) far below float32's resolution
    inputs["B"], inputs["C"] = inputs["B"][:, 0], inputs["C"][:, 0]  # (batch, N, L): one group
    del inputs["z"], inputs["D"]
    assert_matches(run_1d(inputs, "triton", torch.float32), run_1d(inputs, "reference", torch.float64))


def cross_inputs(height: int, width: int, chans=3, n_state=2, rank=2, batch=1, seed=0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    k = 4

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    a_logs = torch.log(torch.arange(1, n_state + 1, dtype=torch.float64)).repeat(k * chans, 1)
    return [randn(batch, height, width, chans), randn(k, rank + 2 * n_state, chans) * chans**-0.5,
            randn(k, chans, rank) * rank**-0.5, randn(k, chans) * 0.5 - 1,
            a_logs + torch.rand(k * chans, n_state, generator=g, dtype=torch.float64), randn(k * chans)]


def run_cross(inputs: list, backend: str, dtype: torch.dtype):
    leaves = [t.to(dtype).requires_grad_() for t in inputs]
    y = scan.cross_selective_scan(*leaves, backend=backend)
    weight = torch.linspace(-1, 2, y.numel(), dtype=torch.float64).view_as(y)
    grads = torch.autograd.grad((y * weight.to(y.dtype)).sum(), leaves)
    names = ["x", "x_proj_weight", "dt_projs_weight", "dt_projs_bias", "A_logs", "Ds"]
    return y, dict(zip(names, grads))


@pytest.mark.parametrize("layout", ["merged", "per_direction"])
def test_triton_cross_scan_matches_reference_on_non_square_maps(monkeypatch, layout):
    # merged: one program runs the four directions and sums them in place (large batches);
    # per_direction: one program per direction, four output slots summed afterwards (small batches)
    monkeypatch.setattr(triton_scan, "_MIN_PROGRAMS_MERGED", 0 if layout == "merged" else 10**9)
    if layout == "merged":  # one channel block here; per_direction covers several (the last one masked)
        monkeypatch.setattr(triton_scan, "_BLOCK_D", 4)
    height, width = (3, 2) if layout == "merged" else (2, 3)
    inputs = cross_inputs(height, width)
    assert_matches(run_cross(inputs, "triton", torch.float32), run_cross(inputs, "reference", torch.float64))


# bf16/fp16: the inputs are rounded to the dtype, then compared with the float64 reference on the rounded
# inputs; what remains is the x projection's matmul in the low dtype and the gradients' cast back to it
# (bf16 keeps 8 bits: 2^-8 ≈ 4e-3 relative per value).
@pytest.mark.parametrize(("dtype", "value_tol", "grad_tol"),
                         [(torch.bfloat16, 2e-2, 5e-2), (torch.float16, 3e-3, 1e-2)])
def test_triton_cross_scan_low_precision_inputs(monkeypatch, dtype, value_tol, grad_tol):
    monkeypatch.setattr(triton_scan, "_MIN_PROGRAMS_MERGED", 0)
    monkeypatch.setattr(triton_scan, "_BLOCK_D", 4)  # one channel block: the fp32 tests cover several
    inputs = [t.to(dtype).double() for t in cross_inputs(2, 3, seed=2)]
    result = run_cross(inputs, "triton", dtype)
    assert result[0].dtype == torch.float32  # the merged map is float32, as with every backend
    assert all(grad.dtype == dtype for grad in result[1].values())
    assert_matches(result, run_cross(inputs, "reference", torch.float64), value_tol, grad_tol)


def test_triton_bf16_state_stays_float32(monkeypatch):
    """A long bf16 recurrence keeps its float32 state: the error does not grow with the length."""
    monkeypatch.setattr(triton_scan, "CHUNK", 8)
    inputs = scan_1d_inputs(groups=1, per_group=2, n_state=2, length=24, seed=3)
    inputs = {k: v.to(torch.bfloat16).double() for k, v in inputs.items() if k != "z"}
    y, *_ = run_1d(inputs, "triton", torch.bfloat16)
    y_ref, *_ = run_1d(inputs, "reference", torch.float64)
    assert rel_err(y, y_ref) < 1e-2  # only the output's rounding to bf16 (2^-8) remains


def test_triton_backend_needs_cuda_or_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET")
    inputs = scan_1d_inputs(length=2)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        scan.selective_scan_fn(inputs["u"].float(), inputs["delta"].float(), inputs["A"].float(),
                               inputs["B"].float(), inputs["C"].float(), backend="triton")
    with pytest.raises(RuntimeError, match="CUDA tensors"):
        scan.cross_selective_scan(*[t.float() for t in cross_inputs(2, 2)], backend="triton")


def test_triton_is_auto_on_cuda_only(monkeypatch):
    assert scan.resolve_backend("auto", torch.device("cuda")) == "triton"
    assert scan.resolve_backend("auto", torch.device("cpu")) in ("fused", "unrolled")  # CPU: unchanged
    monkeypatch.setattr(scan, "triton_importable", lambda: False)
    assert scan.resolve_backend("auto", torch.device("cuda")) == ("mamba_ssm" if scan.MAMBA_SSM_AVAILABLE
                                                                  else "chunked")


def test_triton_inference_keeps_no_checkpoints():
    inputs = [t.float() for t in cross_inputs(2, 2)]
    with torch.no_grad():
        y = scan.cross_selective_scan(*inputs, backend="triton")
    y_ref = scan.cross_selective_scan(*inputs, backend="reference")
    assert not y.requires_grad and rel_err(y, y_ref) < VALUE_TOL


@pytest.mark.slow
def test_triton_gpu_check_smoke_mode_runs_on_cpu():
    """benchmarks/gpu_check.py --smoke: the whole script at tiny shapes with interpreter Triton."""
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--smoke"],
                            capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["mode"] == "smoke" and report["device"]["type"] == "cpu"
    assert report["scan"]["selective_scan"]["ok"] and report["scan"]["cross_selective_scan"]["ok"]
    throughput = report["throughput"]
    for model in ("aesmamba_v", "convnext_t"):
        for precision in ("fp32", "bf16"):
            entry = throughput[model][precision][str(throughput["batches"][0])]
            assert entry["forward_img_s"] > 0 and entry["train_img_s"] > 0, (model, precision, entry)
            assert entry["train_loss_finite"], (model, precision)


@pytest.mark.slow
def test_triton_scan_under_activation_checkpointing_matches_plain_backward(monkeypatch):
    """Activation checkpointing (transformers' mechanism, as ``TrainConfig.activation_checkpointing`` turns it on
    through Trainer) recomputes each VSS block; the Triton autograd functions give the same gradients."""
    from aesmamba_hf import AesMambaConfig, AesMambaForAestheticAssessment
    from aesmamba_hf.training.recipes import TrainConfig
    from aesmamba_hf.training.trainer import make_training_arguments

    monkeypatch.setattr(triton_scan, "CHUNK", 64)  # the model's 16/32 channels in one block: fewer programs
    monkeypatch.setattr(triton_scan, "_BLOCK_D", 32)
    config = AesMambaConfig.tiny(task="V")
    config.vision_config.drop_path_rate = 0.0
    torch.manual_seed(0)
    model = AesMambaForAestheticAssessment(config)
    model.set_scan_backend("triton")
    model.train()
    pixels = torch.randn(1, 3, 8, 8)

    def grads():
        torch.manual_seed(1)
        model.zero_grad(set_to_none=True)
        model(pixel_values=pixels).scores.square().sum().backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    plain = grads()
    model.activation_checkpointing_enable()
    checkpointed = grads()
    assert any("ss2d" in name for name in plain) and plain.keys() == checkpointed.keys()
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-5, atol=1e-7, msg=name)
    cfg = TrainConfig(task="V", bf16=True, activation_checkpointing=True, use_cpu=True)
    args = make_training_arguments(cfg)
    assert args.bf16 and args.activation_checkpointing


def test_triton_gpu_accelerate_config_is_valid():
    """examples/accelerate_multi_gpu.yaml (the multi-GPU set-up of docs/gpu.md) loads as an accelerate config."""
    from accelerate.commands.config.config_args import ClusterConfig

    config = ClusterConfig.from_yaml_file(str(REPO / "examples" / "accelerate_multi_gpu.yaml"))
    assert str(config.distributed_type).endswith("MULTI_GPU")
    assert config.num_processes == 8 and config.num_machines == 1
    assert str(config.mixed_precision).endswith("bf16") and not config.use_cpu


def _kernel_signature(kernel, dtype: str, constexprs: dict) -> dict:
    """Triton signature of the scan kernels: the input tensors in ``dtype``, every other pointer fp32."""
    inputs = ("u_ptr", "dl_ptr", "b_ptr", "c_ptr", "x_ptr", "w_ptr")
    signature = {}
    for param in kernel.params:
        name = param.name
        if name in constexprs:
            signature[name] = "constexpr"
        elif name.endswith("_ptr"):
            signature[name] = f"*{dtype}" if name in inputs else "*fp32"
        else:  # strides (may exceed 2^31 elements) and sizes
            signature[name] = "i64" if name.startswith("s") else "i32"
    return signature


@pytest.mark.slow
@pytest.mark.parametrize(("which", "cross", "dtype"), [("forward", True, "fp32"), ("backward", True, "bf16"),
                                                       ("backward", False, "fp16")])
def test_triton_kernels_compile_for_a_gpu_without_one(which, cross, dtype):
    """The compiled (not interpreted) kernels go through Triton's whole CUDA pipeline to a cubin for sm_90
    on this CPU machine: what the interpreter cannot check (static typing, constexpr branches, loops with
    run-time bounds, atomics) is checked here without a GPU."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, compile

    forward, backward = triton_scan._jit_kernels(False)
    kernel = forward if which == "forward" else backward
    constexprs = dict(N=16, N_PAD=16, R_PAD=8, BLOCK_D=32, K_PER_PROG=4 if cross else 1, CHUNK_T=64, CROSS=cross,
                      PROJ=cross, SOFTPLUS=True)
    if which == "forward":
        constexprs.update(SAVE_CKPT=True, SAVE_LAST=not cross)
    source = ASTSource(fn=kernel, signature=_kernel_signature(kernel, dtype, constexprs), constexprs=constexprs)
    try:
        compiled = compile(source, target=GPUTarget("cuda", 90, 32))
    except FileNotFoundError as err:  # a triton build without its bundled ptxas
        pytest.skip(f"no CUDA toolchain in this triton install: {err}")
    assert compiled.asm["cubin"] and ".entry" in compiled.asm["ptx"]
