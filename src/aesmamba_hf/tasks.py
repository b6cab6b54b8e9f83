"""The four AesMamba tasks as one small type.

The paper trains one modular model for four tasks; what differs between them is which text input the model
reads and which heads it has:

* ``V`` (generic): image only; one head (a vote distribution or a scalar score).
* ``M`` (multimodal): image + user comments, fused by cross-attention; the heads of V.
* ``F`` (fine-grained): image only; the nine PARA attributes, each with a scale-class branch.
* ``P`` (personalised): image + a prompt built from a user's characters (SMP); the nine PARA attributes,
  without scale-class branches (the released P model has none).

``Task`` is a ``str`` enum, so ``config.task`` stays a plain string in ``config.json`` and
``Task(config.task)`` gives the behaviour below. Flat module: remote code copies it next to the modeling files.
"""

from __future__ import annotations

from enum import Enum
from typing import Optional


class Task(str, Enum):
    GENERIC = "V"
    MULTIMODAL = "M"
    FINE_GRAINED = "F"
    PERSONALIZED = "P"

    def __str__(self) -> str:  # "V", not "Task.GENERIC", in messages and JSON
        return self.value

    @classmethod
    def parse(cls, value: object) -> Task:
        """A task from ``"V"``/``"v"``, a ``Task`` or its name; a clear error otherwise."""
        if isinstance(value, Task):
            return value
        text = str(value).strip()
        for task in cls:
            if text.upper() == task.value or text.upper() == task.name:
                return task
        raise ValueError(f"unknown AesMamba task {value!r}; expected one of V, M, F, P")

    @property
    def text_input(self) -> Optional[str]:
        """What the text encoder reads: ``"comment"`` (M), ``"user"`` (P), or ``None`` (image only)."""
        return {"M": "comment", "P": "user"}.get(self.value)

    @property
    def uses_text(self) -> bool:
        return self.text_input is not None

    @property
    def reads_comments(self) -> bool:
        return self is Task.MULTIMODAL

    @property
    def reads_user_profile(self) -> bool:
        return self is Task.PERSONALIZED

    @property
    def predicts_para_attributes(self) -> bool:
        """F and P predict the nine PARA attributes; V and M one overall aesthetic head."""
        return self in (Task.FINE_GRAINED, Task.PERSONALIZED)

    @property
    def has_scale_classes(self) -> bool:
        """Whether the released heads carry a scale-class branch (all tasks but P)."""
        return self is not Task.PERSONALIZED

    @property
    def description(self) -> str:
        return {
            "V": "image only (generic aesthetics)",
            "M": "image + user comments (multimodal)",
            "F": "image only, nine PARA attributes (fine-grained)",
            "P": "image + user profile prompt, nine PARA attributes (personalised)",
        }[self.value]


__all__ = ["Task"]
