"""PIAA protocol runner: per-user few-shot fine-tuning of a generic AesMamba checkpoint on PARA.

* :mod:`.sampling` — the settings (:class:`PIAAConfig`), seeds and k-shot draws;
* :mod:`.users` — which users take part and their training pool / fixed test rows;
* :mod:`.protocol` — :func:`run_piaa`, and :func:`finetune`, which calls the package's one fine-tuning function
  (:func:`aesmamba_hf.training.fit`, the same path as ``train()``);
* :mod:`.report` — the summary (mean ± std), table, CSV and box plot;
* :mod:`.adapters` — per-user PEFT adapters on a shared base (:class:`AdapterBank` swaps users);
* :mod:`.personalize` — :func:`personalize`: one user's ratings → their adapter (``aesmamba personalize``);
* :mod:`.taste` — taste adapters: a user's taste fitted in closed form under the base's taste prior (what many
  raters taught), for a few ratings.
"""

from ..training.finetune import trainable_modules
from .adapters import (
                       ADAPTER_KINDS,
                       AdapterBank,
                       AdapterError,
                       attach_adapter,
                       load_adapter,
                       merge_adapter,
                       read_personalization,
)
from .personalize import PersonalizeConfig, PersonalizeResult, RatingsError, personalize, read_ratings
from .protocol import PIAAResult, attribute_columns, finetune, per_user_train_config, predict, run_piaa
from .report import plot_boxplot, summarize, summary_table
from .sampling import PIAAConfig, run_seed, sample_shots, split_validation, stable_seed
from .taste import TastePrior, TastePriorError, estimate_taste_prior, fit_taste, taste_adapter
from .users import UserData, load_users, rows_by_user

__all__ = [
    "ADAPTER_KINDS",
    "AdapterBank",
    "AdapterError",
    "PersonalizeConfig",
    "PersonalizeResult",
    "RatingsError",
    "TastePrior",
    "TastePriorError",
    "attach_adapter",
    "estimate_taste_prior",
    "fit_taste",
    "load_adapter",
    "merge_adapter",
    "personalize",
    "read_personalization",
    "read_ratings",
    "PIAAConfig",
    "PIAAResult",
    "UserData",
    "attribute_columns",
    "finetune",
    "load_users",
    "per_user_train_config",
    "plot_boxplot",
    "predict",
    "run_piaa",
    "rows_by_user",
    "run_seed",
    "sample_shots",
    "split_validation",
    "stable_seed",
    "summarize",
    "summary_table",
    "taste_adapter",
    "trainable_modules",
]
