"""Text inputs of the multimodal variants: Subject Multi-character Prompts (SMP, P) and comment cleaning (M).

SMP (paper §3.5): a user's characters are written into a fixed English template that BERT reads.
:func:`build_prompt` reproduces the authors' prompt byte for byte by default, including the missing space
after the Big-Five sentence and Python ``str()`` formatting of the values (``7`` for integers, ``7.0`` for
floats), and extends it to any subset or extension of characters.

Character order (fixed, whatever order they are requested in):

1. Big-Five scores, in the authors' order openness, conscientiousness, extroversion, agreeableness,
   neuroticism (one sentence);
2. artistic experience, photographic experience (one sentence when both are present);
3. age, gender, education (one sentence each);
4. extra characters, sorted by name (``"My <name> is <value>."``, underscores in the name read as spaces).

The sentences are joined with one space, except that by default nothing separates the Big-Five sentence from
the next one, as in the authors' template (``fix_spacing=True`` inserts the space).
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Optional, Union


class PromptWarning(UserWarning):
    """A prompt was built, but from fewer characters than the model was trained with; the message names them."""


# PARA's experience levels (paper §3.5); values are matched case-insensitively and printed as given.
EXPERIENCE_LEVELS = ("beginner", "competent", "proficient", "expert")

# PARA stores the Big-Five trait scores as small integers. The range of the questionnaire is stated neither in
# the AesMamba paper nor in its code; PARA tooling treats each trait as one of ten integer levels (1..10), which
# also covers the 2..10 range of a two-items-per-trait short inventory. Values outside it are rejected.
BIG_FIVE_RANGE = (1, 10)

# (field name, PARA UserInfo column, word used in the prompt) in the authors' order O, C, E, A, N.
BIG_FIVE_TRAITS = (
    ("openness", "personality-O", "Openness"),
    ("conscientiousness", "personality-C", "conscientiousness"),
    ("extroversion", "personality-E", "extroversion"),
    ("agreeableness", "personality-A", "agreeableness"),
    ("neuroticism", "personality-N", "Neuroticism"),
)
BIG_FIVE_NAMES = tuple(t[0] for t in BIG_FIVE_TRAITS)

# Named characters in prompt order; extras follow, sorted by name.
CHARACTER_ORDER = (*BIG_FIVE_NAMES, "art_experience", "photo_experience", "age", "gender", "education")

# The characters of the released AesMamba-P prompt (Big-Five + the two experiences).
SMP_CHARACTERS = (*BIG_FIVE_NAMES, "art_experience", "photo_experience")

# PARA-UserInfo.csv column -> UserProfile field.
PARA_USERINFO_COLUMNS = {
    "userId": "user_id",
    "age": "age",
    "gender": "gender",
    "EducationalLevel": "education",
    "artExperience": "art_experience",
    "photographyExperience": "photo_experience",
    **{column: name for name, column, _ in BIG_FIVE_TRAITS},
}

Scalar = Union[int, float, str]


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    try:  # numpy / pandas NaN and pandas.NA
        import pandas as pd

        return bool(pd.isna(value)) if not isinstance(value, (str, bytes)) else False
    except (ImportError, TypeError, ValueError):
        return False


def _plain(value: Any) -> Any:
    """numpy scalars -> the Python scalar whose ``str()`` pandas would print (int64 7 -> 7, float64 7 -> 7.0)."""
    if isinstance(value, bool):
        return value
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (ValueError, TypeError):
            pass
    return value


@dataclass
class UserProfile:
    """A user's characters for Subject Multi-character Prompts (all optional).

    Attributes:
        openness, conscientiousness, extroversion, agreeableness, neuroticism: Big-Five trait scores as
            PARA stores them (integers in ``BIG_FIVE_RANGE``; floats are accepted and print as ``7.0``).
        art_experience, photo_experience: one of ``EXPERIENCE_LEVELS``.
        age, gender, education: free values (PARA: an age bracket, ``male``/``female``, an education level).
        extra: any further characters, ``{"name": value}``; written as ``"My name is value."``.
        user_id: identifier only, never part of the prompt.
    """

    openness: Optional[float] = None
    conscientiousness: Optional[float] = None
    extroversion: Optional[float] = None
    agreeableness: Optional[float] = None
    neuroticism: Optional[float] = None
    art_experience: Optional[str] = None
    photo_experience: Optional[str] = None
    age: Optional[Scalar] = None
    gender: Optional[str] = None
    education: Optional[str] = None
    extra: dict[str, Scalar] = field(default_factory=dict)
    user_id: Optional[Scalar] = None

    def __post_init__(self) -> None:
        for name in BIG_FIVE_NAMES:
            value = getattr(self, name)
            value = None if _is_missing(value) else _plain(value)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, numbers.Real):
                    raise ValueError(f"UserProfile.{name} must be a number, got {value!r}")
                if not math.isfinite(value):
                    raise ValueError(f"UserProfile.{name} must be finite, got {value!r}")
                low, high = BIG_FIVE_RANGE
                if not low <= value <= high:
                    raise ValueError(
                        f"UserProfile.{name}={value!r} is outside the PARA Big-Five range [{low}, {high}]"
                    )
            setattr(self, name, value)
        for name in ("art_experience", "photo_experience"):
            value = getattr(self, name)
            value = None if _is_missing(value) else _plain(value)
            if value is not None:
                if not isinstance(value, str) or value.strip().lower() not in EXPERIENCE_LEVELS:
                    raise ValueError(
                        f"UserProfile.{name} must be one of {', '.join(EXPERIENCE_LEVELS)}; got {value!r}"
                    )
            setattr(self, name, value)
        for name in ("age", "gender", "education", "user_id"):
            value = getattr(self, name)
            value = None if _is_missing(value) else _plain(value)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (str, int, float))):
                raise ValueError(f"UserProfile.{name} must be a string or a number, got {value!r}")
            setattr(self, name, value)
        if not isinstance(self.extra, Mapping):
            raise ValueError(f"UserProfile.extra must be a mapping of name -> value, got {self.extra!r}")
        extra: dict[str, Scalar] = {}
        for key, value in self.extra.items():
            if not isinstance(key, str) or not key.strip():
                raise ValueError(f"UserProfile.extra keys must be non-empty strings, got {key!r}")
            if key in CHARACTER_ORDER or key in ("big_five", "user_id", "extra"):
                raise ValueError(f"UserProfile.extra[{key!r}] clashes with a named character; set .{key} instead")
            value = _plain(value)
            if _is_missing(value):
                continue
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise ValueError(f"UserProfile.extra[{key!r}] must be a string or a number, got {value!r}")
            extra[key] = value
        self.extra = extra

    # -- construction / serialization -------------------------------------------------------------------

    @classmethod
    def from_para_row(cls, row: Union[Mapping[str, Any], Any]) -> UserProfile:
        """Build a profile from one row of ``PARA-UserInfo.csv`` (a dict or a pandas Series).

        Values keep their types (a pandas int prints as ``7``, a float as ``7.0``, as in the authors' code);
        NaN cells count as missing. Columns other than the UserInfo ones are ignored.
        """
        getter = row.get if hasattr(row, "get") else None
        if getter is None:
            raise TypeError(f"from_para_row expects a dict or a pandas Series, got {type(row).__name__}")
        known = [column for column in PARA_USERINFO_COLUMNS if column in row]
        if not any(PARA_USERINFO_COLUMNS[c] in CHARACTER_ORDER for c in known):
            raise ValueError(
                f"row has none of the PARA UserInfo columns {sorted(PARA_USERINFO_COLUMNS)}; "
                f"got {sorted(map(str, row.keys()))}"
            )
        values = {PARA_USERINFO_COLUMNS[column]: row[column] for column in known}
        try:
            return cls(**values)
        except ValueError as err:
            user = values.get("user_id")
            raise ValueError(f"PARA user {user!r}: {err}") from err

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UserProfile:
        """From field names (``openness``, ``art_experience``, ..., ``extra``) or PARA column names."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a user profile must be a JSON object / mapping, got {type(data).__name__}")
        names = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        unknown = []
        for key, value in data.items():
            if key in names:
                values[key] = value
            elif key in PARA_USERINFO_COLUMNS:
                values[PARA_USERINFO_COLUMNS[key]] = value
            else:
                unknown.append(key)
        if unknown:
            raise ValueError(
                f"unknown user-profile keys {unknown}; known: {sorted(names)} (or PARA columns "
                f"{sorted(PARA_USERINFO_COLUMNS)}); put other characters under \"extra\""
            )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The set fields only (``None`` and an empty ``extra`` are left out)."""
        return {k: v for k, v in asdict(self).items() if v is not None and v != {}}

    def to_json(self, path: Union[str, os.PathLike, None] = None, indent: Optional[int] = 2) -> str:
        """JSON text (integers stay integers, floats keep their ``.0``); also written to ``path`` if given."""
        text = json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    @classmethod
    def from_json(cls, source: Union[str, os.PathLike]) -> UserProfile:
        """From a JSON string or the path of a JSON file."""
        text: str
        origin = "JSON text"
        if isinstance(source, os.PathLike) or (isinstance(source, str) and not source.lstrip().startswith("{")):
            origin = str(source)
            try:
                text = Path(source).read_text(encoding="utf-8")
            except OSError as err:
                raise ValueError(f"cannot read user profile {origin}: {err}") from err
        else:
            text = str(source)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"user profile {origin} is not valid JSON: {err}") from err
        try:
            return cls.from_dict(data)
        except ValueError as err:
            raise ValueError(f"user profile {origin}: {err}") from err

    # -- prompt -----------------------------------------------------------------------------------------

    def available_characters(self) -> list[str]:
        """Names of the characters that have a value, in prompt order."""
        named = [name for name in CHARACTER_ORDER if getattr(self, name) is not None]
        return named + sorted(self.extra)

    def to_prompt(self, characters: Union[str, Iterable[str], None] = None, fix_spacing: bool = False) -> str:
        """Shorthand for :func:`build_prompt`."""
        return build_prompt(self, characters=characters, fix_spacing=fix_spacing)


def _resolve_characters(profile: UserProfile, characters: Union[str, Iterable[str], None]) -> list[str]:
    if characters is None or characters == "smp":
        return [name for name in SMP_CHARACTERS if getattr(profile, name) is not None]
    if characters == "all":
        return profile.available_characters()
    if isinstance(characters, str):
        characters = [characters]
    requested: set[str] = set()
    for name in characters:
        if name == "big_five":
            requested.update(BIG_FIVE_NAMES)
        elif name == "experience":
            requested.update(("art_experience", "photo_experience"))
        elif name == "extra":
            requested.update(profile.extra)
        elif name in CHARACTER_ORDER or name in profile.extra:
            requested.add(name)
        else:
            raise ValueError(
                f"unknown character {name!r}; known: {list(CHARACTER_ORDER)}, the groups 'big_five', "
                f"'experience', 'extra', or an extra key of the profile {sorted(profile.extra)}"
            )
    missing = [name for name in requested if name in CHARACTER_ORDER and getattr(profile, name) is None]
    if missing:
        missing.sort(key=CHARACTER_ORDER.index)
        raise ValueError(f"the user profile has no value for the requested character(s) {missing}")
    return [name for name in profile.available_characters() if name in requested]


def _join_clauses(clauses: list[str]) -> str:
    if len(clauses) == 1:
        return clauses[0]
    return ", ".join(clauses[:-1]) + ", and " + clauses[-1]


def build_prompt(
    profile: UserProfile,
    characters: Union[str, Iterable[str], None] = None,
    fix_spacing: bool = False,
) -> str:
    """Subject Multi-character Prompt for ``profile``.

    Args:
        profile: the user's characters.
        characters: which characters to write. ``None`` / ``"smp"`` (default): the characters of the released
            AesMamba-P prompt (Big-Five, artistic and photographic experience) that the profile has — with all
            seven present this is the authors' prompt byte for byte. ``"all"``: every character the profile
            has. Or an iterable of names from ``CHARACTER_ORDER``, the groups ``"big_five"``/``"experience"``/
            ``"extra"``, and extra keys; requesting a named character the profile lacks is an error. The
            output order is always the fixed order of the module docstring.
        fix_spacing: insert the space the authors' template lacks after the Big-Five sentence.

    Returns:
        The prompt string.
    """
    selected = _resolve_characters(profile, characters)
    if characters in (None, "smp") and selected and len(selected) < len(SMP_CHARACTERS):
        missing = [name for name in SMP_CHARACTERS if name not in selected]
        warnings.warn(
            f"user profile{'' if profile.user_id is None else f' {profile.user_id!r}'} has no value for {missing} "
            "(missing or NaN): the prompt leaves them out, but the released P models were trained on all seven "
            "SMP characters, so its scores are less personal; give every trait, or pick characters= explicitly",
            PromptWarning, stacklevel=2,
        )
    if not selected:
        raise ValueError(
            "the user profile has none of the requested characters; the prompt would be empty "
            f"(profile has {profile.available_characters()})"
        )
    sentences: list[str] = []
    traits = [(word, getattr(profile, name)) for name, _, word in BIG_FIVE_TRAITS if name in selected]
    if traits:
        clauses = [f"{word} score is {value}" for word, value in traits]
        intro = "my scores are as follows" if len(clauses) > 1 else "my score is as follows"
        sentences.append(f"In the Big-Five personality traits test, {intro}: {_join_clauses(clauses)}.")
    art = profile.art_experience if "art_experience" in selected else None
    photo = profile.photo_experience if "photo_experience" in selected else None
    if art is not None and photo is not None:
        sentences.append(f"My artistic experience is {art}, while my photographic experience is {photo}.")
    elif art is not None:
        sentences.append(f"My artistic experience is {art}.")
    elif photo is not None:
        sentences.append(f"My photographic experience is {photo}.")
    if "age" in selected:
        sentences.append(f"My age is {profile.age}.")
    if "gender" in selected:
        sentences.append(f"My gender is {profile.gender}.")
    if "education" in selected:
        sentences.append(f"My educational level is {profile.education}.")
    for key in sorted(k for k in profile.extra if k in selected):
        sentences.append(f"My {key.replace('_', ' ').strip()} is {profile.extra[key]}.")

    text = sentences[0]
    for index, sentence in enumerate(sentences[1:], start=1):
        # The authors' template has no space after the Big-Five sentence ("...is 3.My artistic ...").
        glue = "" if (index == 1 and traits and not fix_spacing) else " "
        text += glue + sentence
    return text


# -- comments (M) -----------------------------------------------------------------------------------------

_COMMENT_PUNCTUATION = re.compile(r"[\[\]()'\"*#:~]")
_MULTI_WHITESPACE = re.compile(r"\s{2,}")


def clean_comment(text: Any, max_words: Optional[int] = 200) -> str:
    """Comment preprocessing of AesMamba-M, as in the authors' dataset classes.

    1. each of ``[ ] ( ) ' " * # : ~`` becomes a space; 2. the two characters backslash + ``n`` (as stored in
    the CSVs' list reprs) become a space; 3. runs of two or more whitespace characters become one space;
    4. spaces are stripped from both ends; 5. only the first ``max_words`` space-separated words are kept
    (``None``: no limit). No lower-casing (the uncased tokenizer does that).
    """
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ""
    text = str(text)
    text = _COMMENT_PUNCTUATION.sub(" ", text)
    text = text.replace("\\n", " ")
    text = _MULTI_WHITESPACE.sub(" ", text)
    text = text.strip(" ")
    if max_words is not None:
        words = text.split(" ")
        if len(words) > max_words:
            text = " ".join(words[:max_words])
    return text


__all__ = [
    "BIG_FIVE_NAMES",
    "BIG_FIVE_RANGE",
    "BIG_FIVE_TRAITS",
    "CHARACTER_ORDER",
    "EXPERIENCE_LEVELS",
    "PARA_USERINFO_COLUMNS",
    "PromptWarning",
    "SMP_CHARACTERS",
    "UserProfile",
    "build_prompt",
    "clean_comment",
]
