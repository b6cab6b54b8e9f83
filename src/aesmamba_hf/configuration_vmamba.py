"""Configuration of the VMamba v0 ("Vanilla-VMamba") image encoder used by AesMamba.

The defaults are Vanilla-VMamba-T, the encoder of every released AesMamba model. :data:`VMAMBA_V0_PRESETS` holds
the sizes of the official v0 family (VMamba ``classification/models/vmamba.py``: ``vanilla_vmamba_tiny`` /
``_small`` / ``_base``, and ``classification/configs/vssm/vmambav0_*_224.yaml``); ``VMambaConfig.from_preset``
builds one. Vanilla-VMamba-B is the encoder of the paper's AesMamba-V† (TAD66K, Table 1b).
"""

from __future__ import annotations

import math
from typing import Optional, Union

from transformers import PretrainedConfig

from .selective_scan import SCAN_BACKENDS

# The official v0 sizes. Everything else is shared by the three (d_state 16, ssm_ratio 2.0, dt_rank "auto",
# 3x3 depth-wise conv with bias, no MLP, LayerNorm, v1 patch embedding and merging) and is this class's default.
# The ImageNet runs used stochastic depth 0.2 / 0.3 / 0.6; AesMamba fine-tunes with drop_path_rate 0.0 (kept).
VMAMBA_V0_PRESETS: dict[str, dict] = {
    "vmamba-t-v0": {"embed_dim": 96, "depths": [2, 2, 9, 2]},  # Vanilla-VMamba-T, 22.9 M with its 1000-class head
    "vmamba-s-v0": {"embed_dim": 96, "depths": [2, 2, 27, 2]},  # Vanilla-VMamba-S, 44 M
    "vmamba-b-v0": {"embed_dim": 128, "depths": [2, 2, 27, 2]},  # Vanilla-VMamba-B, 76 M (vssmbase_dp06)
}


class VMambaConfig(PretrainedConfig):
    r"""
    Args:
        num_channels: input image channels.
        patch_size: side of the non-overlapping conv stem.
        embed_dim: width of stage 0; stage i has ``embed_dim * 2**i`` channels.
        depths: VSS blocks per stage.
        d_state: SSM state size N.
        ssm_ratio: d_inner = ssm_ratio * C.
        dt_rank: rank R of the Δ projection, ``"auto"`` = ceil(C / 16).
        d_conv: depth-wise conv kernel inside SS2D.
        conv_bias: bias of that conv (True in v0).
        layer_norm_eps: epsilon of every LayerNorm (1e-5 in AesMamba's VSSM).
        drop_path_rate: stochastic depth, linearly increasing over blocks (AesMamba uses 0.0).
        dt_min, dt_max, dt_init_floor: range of the initial Δ (S6 initialisation).
        initializer_range: std of the truncated normal for linear layers.
        scan_backend: default selective-scan backend, one of ``"auto"``, ``"fused"``, ``"chunked"``,
            ``"unrolled"``, ``"reference"``, ``"mamba_ssm"``, ``"triton"`` (see ``selective_scan.py``), read at every call. Not a model
            property: ``model.set_scan_backend`` overrides it for one model object without changing this field.
    """

    model_type = "vmamba"

    def __init__(
        self,
        num_channels: int = 3,
        patch_size: int = 4,
        embed_dim: int = 96,
        depths: Optional[list[int]] = None,
        d_state: int = 16,
        ssm_ratio: float = 2.0,
        dt_rank: Union[int, str] = "auto",
        d_conv: int = 3,
        conv_bias: bool = True,
        layer_norm_eps: float = 1e-5,
        drop_path_rate: float = 0.0,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        initializer_range: float = 0.02,
        scan_backend: str = "auto",
        **kwargs,
    ):
        if scan_backend not in SCAN_BACKENDS:
            raise ValueError(f"scan_backend must be one of {SCAN_BACKENDS}, got {scan_backend!r}")
        if dt_rank != "auto" and not (isinstance(dt_rank, int) and dt_rank > 0):
            raise ValueError(f"dt_rank must be 'auto' or a positive int, got {dt_rank!r}")
        self.num_channels = num_channels
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.depths = list(depths) if depths is not None else [2, 2, 9, 2]
        self.d_state = d_state
        self.ssm_ratio = ssm_ratio
        self.dt_rank = dt_rank
        self.d_conv = d_conv
        self.conv_bias = conv_bias
        self.layer_norm_eps = layer_norm_eps
        self.drop_path_rate = drop_path_rate
        self.dt_min = dt_min
        self.dt_max = dt_max
        self.dt_init_floor = dt_init_floor
        self.initializer_range = initializer_range
        self.scan_backend = scan_backend
        super().__init__(**kwargs)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> VMambaConfig:
        """One of :data:`VMAMBA_V0_PRESETS` (``"vmamba-t-v0"``, ``"vmamba-s-v0"``, ``"vmamba-b-v0"``), with
        field overrides (e.g. ``scan_backend``)."""
        key = name.strip().lower()
        if key not in VMAMBA_V0_PRESETS:
            raise KeyError(f"unknown VMamba preset {name!r}; known: {', '.join(VMAMBA_V0_PRESETS)}")
        return cls(**{**VMAMBA_V0_PRESETS[key], **overrides})

    @property
    def dims(self) -> list[int]:
        return [self.embed_dim * 2**i for i in range(len(self.depths))]

    @property
    def hidden_size(self) -> int:
        """Width of the pooled feature (768 for VMamba-T)."""
        return self.dims[-1]

    def stage_dt_rank(self, dim: int) -> int:
        return math.ceil(dim / 16) if self.dt_rank == "auto" else int(self.dt_rank)
