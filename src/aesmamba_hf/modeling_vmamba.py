"""VMamba v0 ("Vanilla-VMamba-T"): patch embed → 4 stages of VSS blocks (SS2D) → LN → mean pool.

Activations are channels-last ``(batch, H, W, C)`` between modules, as in the original.

The selective-scan backend is run-time state, not model state: each SS2D reads ``config.scan_backend`` at call
time unless ``set_scan_backend`` chose one for this model object (never written into the config, so a saved
checkpoint never carries a temporary choice). transformers' Mamba mixer picks its fast or slow path per call
the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.utils import ModelOutput

from .configuration_vmamba import VMambaConfig
from .selective_scan import SCAN_BACKENDS, cross_selective_scan, softplus_inverse


@dataclass
class VMambaModelOutput(ModelOutput):
    """
    Args:
        last_hidden_state: (batch, H/32, W/32, C_last) final feature map, before the final LayerNorm.
        pooler_output: (batch, C_last) mean of the final-LayerNorm tokens (the AesMamba image feature).
        hidden_states: when ``output_hidden_states``, ``1 + num_stages`` channels-last maps (batch, h, w, C):
            the patch embedding (H/4, W/4, C_0), then the output of each stage *after* its patch merging (as
            transformers' Swin), i.e. (H/2^(i+3), W/2^(i+3), C_(i+1)) for stage i < last; the last element is
            ``last_hidden_state``. For VMamba-T at 224²: 56²×96, 28²×192, 14²×384, 7²×768, 7²×768.
            With ``output_hidden_states`` a list of indices, the maps not listed are ``None``.
    """

    last_hidden_state: Optional[torch.Tensor] = None
    pooler_output: Optional[torch.Tensor] = None
    hidden_states: Optional[tuple[torch.Tensor, ...]] = None


def _hidden_state_indices(request: Union[bool, list[int], None], count: int) -> frozenset[int]:
    """Which of ``count`` hidden states to return: transformers 5 takes ``output_hidden_states`` as a bool or as
    the indices of the states to keep (negative ones count from the end)."""
    if isinstance(request, (list, tuple)):
        if any(not -count <= i < count for i in request):
            raise IndexError(f"output_hidden_states indices {list(request)} out of range for {count} hidden states")
        return frozenset(i % count for i in request)
    return frozenset(range(count)) if request else frozenset()


class DropPath(nn.Module):
    """Stochastic depth per sample (identity at rate 0 or in eval mode)."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class VMambaPatchEmbed(nn.Module):
    """Conv k=s=patch_size, then LayerNorm over channels: (b,3,H,W) -> (b,H/4,W/4,C)."""

    def __init__(self, config: VMambaConfig):
        super().__init__()
        dim = config.embed_dim
        self.proj = nn.Conv2d(config.num_channels, dim, kernel_size=config.patch_size, stride=config.patch_size)
        self.norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(pixel_values).permute(0, 2, 3, 1))


class VMambaPatchMerging(nn.Module):
    """Swin-style 2×2 merge: concat [x(0,0), x(1,0), x(0,1), x(1,1)] → LN(4C) → Linear(4C→2C)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim, eps=eps)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[1] // 2 * 2, x.shape[2] // 2 * 2  # odd sides are cropped, as in v0
        x = x[:, :h, :w]
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))


class SS2D(nn.Module):
    """2-D selective scan: in_proj → dwconv+SiLU → 4-direction S6 → LN · SiLU(z) → out_proj."""

    def __init__(self, config: VMambaConfig, dim: int):
        super().__init__()
        self.config = config  # shared with the model: scan_backend is read per call
        self.scan_backend: Optional[str] = None  # run-time choice (set_scan_backend); None = the config's
        self.d_inner = int(config.ssm_ratio * dim)
        self.d_state = config.d_state
        self.dt_rank = config.stage_dt_rank(dim)
        self.num_directions = 4
        d_inner, k = self.d_inner, self.num_directions

        self.in_proj = nn.Linear(dim, 2 * d_inner, bias=False)
        self.conv2d = nn.Conv2d(
            d_inner, d_inner, kernel_size=config.d_conv, padding=(config.d_conv - 1) // 2,
            groups=d_inner, bias=config.conv_bias,
        )
        self.x_proj_weight = nn.Parameter(torch.empty(k, self.dt_rank + 2 * self.d_state, d_inner))
        self.dt_projs_weight = nn.Parameter(torch.empty(k, d_inner, self.dt_rank))
        self.dt_projs_bias = nn.Parameter(torch.empty(k, d_inner))
        self.A_logs = nn.Parameter(torch.empty(k * d_inner, self.d_state))
        self.Ds = nn.Parameter(torch.empty(k * d_inner))
        self.out_norm = nn.LayerNorm(d_inner, eps=config.layer_norm_eps)
        self.out_proj = nn.Linear(d_inner, dim, bias=False)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        # in_proj as two half-width matmuls (same weight rows, bit-identical results): x and z come out
        # contiguous, so the depth-wise conv runs channels-last end to end and the scan reads x in place;
        # chunking one output instead costs a transposing copy before the conv and another after it.
        inference = not torch.is_grad_enabled()
        x = F.linear(hidden_states, self.in_proj.weight[: self.d_inner])  # (b, H, W, d_inner)
        z = F.linear(hidden_states, self.in_proj.weight[self.d_inner :])
        x = F.silu(self.conv2d(x.permute(0, 3, 1, 2)), inplace=inference)  # channels-last (b, d_inner, H, W)
        y = cross_selective_scan(
            x.permute(0, 2, 3, 1), self.x_proj_weight, self.dt_projs_weight, self.dt_projs_bias,
            self.A_logs, self.Ds, backend=self.scan_backend or self.config.scan_backend,
        )  # (b, H, W, d_inner), float32
        y = self.out_norm(y.to(z.dtype))
        y = y.mul_(F.silu(z, inplace=True)) if inference else y * F.silu(z)
        return self.out_proj(y)


class VSSBlock(GradientCheckpointingLayer):
    """Pre-norm residual block without MLP (v0): x + DropPath(SS2D(LN(x)))."""

    def __init__(self, config: VMambaConfig, dim: int, drop_path: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.ss2d = SS2D(config, dim)
        self.drop_path = DropPath(drop_path)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return hidden_states + self.drop_path(self.ss2d(self.norm(hidden_states)))


class VMambaStage(nn.Module):
    def __init__(self, config: VMambaConfig, dim: int, depth: int, drop_paths: list[float], downsample: bool):
        super().__init__()
        self.blocks = nn.ModuleList([VSSBlock(config, dim, drop_paths[j]) for j in range(depth)])
        self.downsample = VMambaPatchMerging(dim, config.layer_norm_eps) if downsample else None

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            hidden_states = block(hidden_states)
        if self.downsample is not None:
            hidden_states = self.downsample(hidden_states)
        return hidden_states


class VMambaPreTrainedModel(PreTrainedModel):
    config: VMambaConfig
    config_class = VMambaConfig
    base_model_prefix = "vmamba"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["VSSBlock"]
    # no attention layers, so any implementation a composite parent dispatches down (AesMamba with
    # attn_implementation="sdpa") is trivially honoured; without the flag, the sdpa request raises here
    _supports_sdpa = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # v5 builds models on the meta device: every parameter, including the raw SS2D ones, is set here.
        cfg = self.config
        if isinstance(module, nn.Linear):
            init.trunc_normal_(module.weight, std=cfg.initializer_range)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Conv2d):  # PyTorch's default conv init, as the original keeps it
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                fan_in = module.weight.shape[1] * module.weight.shape[2] * module.weight.shape[3]
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, SS2D):
            d_inner, rank, n_state = module.d_inner, module.dt_rank, module.d_state
            bound = 1 / math.sqrt(d_inner)  # default nn.Linear(d_inner, R + 2N) weights
            init.uniform_(module.x_proj_weight, -bound, bound)
            init.uniform_(module.dt_projs_weight, -(rank**-0.5), rank**-0.5)
            if not getattr(module.dt_projs_bias, "_is_hf_initialized", False):
                u = torch.rand(module.dt_projs_bias.shape, device=module.dt_projs_bias.device)
                dt = torch.exp(u * (math.log(cfg.dt_max) - math.log(cfg.dt_min)) + math.log(cfg.dt_min))
                init.copy_(module.dt_projs_bias, softplus_inverse(dt.clamp(min=cfg.dt_init_floor)))
            a = torch.arange(1, n_state + 1, dtype=torch.float32, device=module.A_logs.device)
            init.copy_(module.A_logs, torch.log(a).expand_as(module.A_logs))
            init.ones_(module.Ds)


class VMambaModel(VMambaPreTrainedModel):
    """VMamba v0 encoder returning the final feature map and the pooled feature."""

    def __init__(self, config: VMambaConfig):
        super().__init__(config)
        self.patch_embed = VMambaPatchEmbed(config)
        total = sum(config.depths)
        # plain Python: models are built on the meta device, where tensors have no values
        rates = [config.drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        stages, start = [], 0
        for i, (dim, depth) in enumerate(zip(config.dims, config.depths)):
            stages.append(
                VMambaStage(config, dim, depth, rates[start : start + depth], downsample=i < len(config.depths) - 1)
            )
            start += depth
        self.layers = nn.ModuleList(stages)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        """The patch embedding, as transformers' Swin and ViT return theirs: ``enable_input_require_grads``
        (PEFT with gradient checkpointing on a frozen encoder) hooks it."""
        return self.patch_embed

    def set_scan_backend(self, backend: Optional[str]) -> None:
        """Choose the selective-scan backend of every SS2D for this model object (e.g. "reference" for an
        oracle run); ``None`` goes back to ``config.scan_backend``. The config is left as it is."""
        if backend is not None and backend not in SCAN_BACKENDS:
            raise ValueError(f"scan_backend must be one of {SCAN_BACKENDS}, got {backend!r}")
        for module in self.modules():
            if isinstance(module, SS2D):
                module.scan_backend = backend

    def get_scan_backend(self) -> Optional[str]:
        """The run-time choice of ``set_scan_backend`` (``None``: each call reads ``config.scan_backend``)."""
        return next(m.scan_backend for m in self.modules() if isinstance(m, SS2D))

    def forward(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: Optional[Union[bool, list[int]]] = None,
        return_dict: Optional[bool] = None,
    ) -> Union[tuple, VMambaModelOutput]:
        """pixel_values (b, 3, H, W) -> last_hidden_state (b, H/32, W/32, C), pooler_output (b, C).

        ``output_hidden_states`` / ``return_dict`` default to the config's fields, read at call time.
        """
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        if return_dict is None:
            return_dict = self.config.return_dict
        keep = _hidden_state_indices(output_hidden_states, 1 + len(self.layers))
        hidden = self.patch_embed(pixel_values)
        kept = [hidden if 0 in keep else None]  # references only to maps asked for: inference frees the rest
        for i, stage in enumerate(self.layers, start=1):
            hidden = stage(hidden)
            kept.append(hidden if i in keep else None)
        pooled = self.norm(hidden.flatten(1, 2)).mean(dim=1)
        output = VMambaModelOutput(
            last_hidden_state=hidden, pooler_output=pooled, hidden_states=tuple(kept) if keep else None
        )
        return output if return_dict else output.to_tuple()


__all__ = ["VMambaModel", "VMambaPreTrainedModel", "VMambaModelOutput", "SS2D", "VSSBlock"]
