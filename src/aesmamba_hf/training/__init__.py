"""Training AesMamba with ``transformers.Trainer`` / ``accelerate``: recipes, the data collator, ``train()``.

>>> from aesmamba_hf.training import load_recipe, train
>>> result = train(load_recipe("v-ava", data_root="/data/AVA", output_dir="runs/v-ava"))
"""

from .collator import AesMambaDataCollator
from .recipes import TrainConfig, TrainRecipe, list_recipes, load_recipe
from .text_cache import TextFeatureCache, cached_text_encoder
from .trainer import (
    AesMambaTrainer,
    CosineAnnealing,
    TrainResult,
    build_model,
    build_processor,
    build_trainer,
    class_counts_per_head,
    find_resumable_checkpoint,
    make_training_arguments,
    set_class_counts,
    train,
)

__all__ = [
    "AesMambaDataCollator",
    "AesMambaTrainer",
    "CosineAnnealing",
    "TrainConfig",
    "TrainRecipe",
    "TrainResult",
    "TextFeatureCache",
    "build_model",
    "build_processor",
    "build_trainer",
    "cached_text_encoder",
    "class_counts_per_head",
    "find_resumable_checkpoint",
    "list_recipes",
    "load_recipe",
    "make_training_arguments",
    "set_class_counts",
    "train",
]
