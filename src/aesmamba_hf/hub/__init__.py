"""The Hub side: official-checkpoint conversion (:mod:`.conversion`), export of complete Hub folders
(:mod:`.export`), the model card template (:mod:`.model_card`), ONNX export (:mod:`.onnx_export`), publishing (:mod:`.publish`) and downloading a
variant (:mod:`.download`)."""

from .conversion import CheckpointConversionError, load_official_checkpoint, load_vmamba_checkpoint
from .download import DownloadError, build_from_hub_config, download
from .export import ExportError, ExportResult, check_remote_code, export_model, load_export_source
from .model_card import BASE_TAGS, CITATION, DEFAULT_LICENSE, PIPELINE_TAG, build_model_card
from .onnx_export import OnnxExportResult, export_onnx
from .publish import REQUIRED_FILES, PublishError, publish_folder

__all__ = [
    "BASE_TAGS",
    "CheckpointConversionError",
    "CITATION",
    "DEFAULT_LICENSE",
    "DownloadError",
    "ExportError",
    "ExportResult",
    "OnnxExportResult",
    "PIPELINE_TAG",
    "PublishError",
    "REQUIRED_FILES",
    "build_from_hub_config",
    "build_model_card",
    "check_remote_code",
    "download",
    "export_model",
    "export_onnx",
    "load_export_source",
    "load_official_checkpoint",
    "load_vmamba_checkpoint",
    "publish_folder",
]
