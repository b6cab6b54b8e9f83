"""Old import path of the official-checkpoint conversion; it lives in :mod:`aesmamba_hf.hub.conversion`."""

from .hub.conversion import (
    CheckpointConversionError,
    convert_official_state_dict,
    convert_vmamba_state_dict,
    load_checkpoint_file,
    load_official_checkpoint,
    load_vmamba_checkpoint,
)

__all__ = [
    "CheckpointConversionError",
    "convert_official_state_dict",
    "convert_vmamba_state_dict",
    "load_checkpoint_file",
    "load_official_checkpoint",
    "load_vmamba_checkpoint",
]
