"""AesMambaProcessor: image processor + (for M/P) BERT tokenizer + the text settings of the variant.

* V, F: images only (the processor has no tokenizer; ``tokenizer=None`` saves and loads).
* M: ``comments=`` — cleaned with the authors' rule (:func:`~aesmamba_hf.prompts.clean_comment`) when
  ``clean_comments`` is on (M configs).
* P: ``users=`` — :class:`~aesmamba_hf.prompts.UserProfile` (or a dict / JSON path) turned into a Subject
  Multi-character Prompt with ``prompt_characters`` / ``fix_prompt_spacing``.

Text is tokenized like the authors' code: ``padding=True, truncation=True`` (dynamic padding, 512 tokens max).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Optional, Union

from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin
from transformers.utils import PROCESSOR_NAME, cached_file

from .image_processing_aesmamba import AesMambaImageProcessor
from .prompts import UserProfile, build_prompt, clean_comment

UserLike = Union[UserProfile, dict, str, os.PathLike]


def _is_series(value: Any) -> bool:
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover
        return False
    return isinstance(value, pd.Series)


def as_user_profile(user: UserLike) -> UserProfile:
    """A ``UserProfile`` from a profile, a dict (field or PARA column names), JSON text or a JSON file path."""
    if isinstance(user, UserProfile):
        return user
    if isinstance(user, dict):
        return UserProfile.from_dict(user)
    if isinstance(user, (str, os.PathLike)):
        return UserProfile.from_json(user)
    if _is_series(user):  # a PARA UserInfo row
        return UserProfile.from_para_row(user)
    raise TypeError(f"cannot make a user profile from {type(user).__name__}")


class AesMambaProcessor(ProcessorMixin):
    r"""Prepares images and the optional text of an AesMamba variant.

    Args:
        image_processor: an :class:`AesMambaImageProcessor` (a default one if ``None``).
        tokenizer: a BERT tokenizer for M/P variants, ``None`` for image-only variants.
        clean_comments: apply the authors' comment cleaning (:func:`~aesmamba_hf.prompts.clean_comment`) to
            ``comments`` (on for M variants).
        max_comment_words: word limit of the cleaning (200, as released).
        prompt_characters: which user characters the SMP prompt contains (``None``: the released P prompt's
            characters; ``"all"``; or a list, see :func:`~aesmamba_hf.prompts.build_prompt`).
        fix_prompt_spacing: insert the space the authors' prompt template lacks.
    """

    def __init__(
        self,
        image_processor: Optional[AesMambaImageProcessor] = None,
        tokenizer: Any = None,
        clean_comments: bool = False,
        max_comment_words: Optional[int] = 200,
        prompt_characters: Union[str, list[str], None] = None,
        fix_prompt_spacing: bool = False,
        **kwargs: Any,
    ):
        # ProcessorMixin.__init__ insists on every sub-processor; image-only variants have no tokenizer.
        self.chat_template = kwargs.pop("chat_template", None)
        if kwargs:
            raise TypeError(f"unexpected keyword arguments {sorted(kwargs)}")
        if image_processor is None:
            image_processor = AesMambaImageProcessor()
        self.check_argument_for_proper_class("image_processor", image_processor)
        if tokenizer is not None:
            self.check_argument_for_proper_class("tokenizer", tokenizer)
        self.image_processor = image_processor
        self.tokenizer = tokenizer
        self.clean_comments = bool(clean_comments)
        self.max_comment_words = max_comment_words
        self.prompt_characters = list(prompt_characters) if isinstance(prompt_characters, (list, tuple)) \
            else prompt_characters
        self.fix_prompt_spacing = bool(fix_prompt_spacing)

    # -- text preparation -------------------------------------------------------------------------------

    def prepare_comment(self, comment: Union[str, Sequence[str], None]) -> str:
        """One image's comment text. A list of comments is written as its Python repr, the form the
        authors' CSVs store (the cleaning then removes brackets and quotes)."""
        if comment is None:
            return ""
        if not isinstance(comment, str):
            comment = [str(c) for c in comment]
            comment = str(comment) if self.clean_comments else " ".join(comment)
        if self.clean_comments:
            return clean_comment(comment, max_words=self.max_comment_words)
        return comment

    def build_prompt(self, user: UserLike) -> str:
        """The SMP prompt for one user with this processor's prompt settings."""
        return build_prompt(as_user_profile(user), characters=self.prompt_characters,
                            fix_spacing=self.fix_prompt_spacing)

    def _texts(self, comments: Any, users: Any, text: Any, n_images: Optional[int]) -> Optional[list[str]]:
        given = [name for name, value in (("comments", comments), ("users", users), ("text", text))
                 if value is not None]
        if not given:
            return None
        if len(given) > 1:
            raise ValueError(f"pass only one of comments=, users=, text= (got {', '.join(given)})")
        if users is not None:
            single = isinstance(users, (UserProfile, dict, str, os.PathLike)) or _is_series(users)
            items = [users] if single else list(users)
            texts = [self.build_prompt(user) for user in items]
        elif comments is not None:
            # a str is one comment; a list of str is one comment per image; a list of lists: several per image
            items = [comments] if isinstance(comments, str) else list(comments)
            texts = [self.prepare_comment(item) for item in items]
        else:
            texts = [text] if isinstance(text, str) else [str(t) for t in text]
        if n_images is not None and len(texts) != n_images:
            if len(texts) == 1:
                texts = texts * n_images  # one user / comment for every image
            else:
                raise ValueError(f"got {len(texts)} texts for {n_images} images")
        return texts

    # -- main entry point -------------------------------------------------------------------------------

    def __call__(
        self,
        images: Any = None,
        comments: Any = None,
        users: Any = None,
        text: Union[str, list[str], None] = None,
        train: bool = False,
        return_tensors: Optional[str] = "pt",
        padding: Union[bool, str] = True,
        truncation: bool = True,
        max_length: Optional[int] = None,
        **image_kwargs: Any,
    ) -> BatchFeature:
        """Preprocess images and their text.

        Args:
            images: a path, PIL image, array, or a list of them.
            comments: M — one comment string per image (or one for all; a list of strings per image is fine).
            users: P — one :class:`UserProfile` (dict / JSON path) per image, or one for all images.
            text: ready-made text, bypassing cleaning and prompt building.
            train: use the training augmentation of the image processor.
            return_tensors, padding, truncation, max_length: passed to the tokenizer (authors: padding=True,
                truncation=True).
            **image_kwargs: passed to the image processor (e.g. ``generator=``).

        Returns:
            ``BatchFeature`` with ``pixel_values`` and, when text is given, ``input_ids``,
            ``token_type_ids`` and ``attention_mask``.
        """
        n_images = None
        data: dict[str, Any] = {}
        if images is not None:
            pixel = self.image_processor(images, train=train, return_tensors=return_tensors, **image_kwargs)
            data.update(pixel)
            n_images = len(pixel["pixel_values"])
        texts = self._texts(comments, users, text, n_images)
        if texts is not None:
            if self.tokenizer is None:
                raise ValueError(
                    "this processor has no tokenizer (an image-only V/F variant); comments/users need an M/P model"
                )
            encoded = self.tokenizer(texts, padding=padding, truncation=truncation, max_length=max_length,
                                     return_tensors=return_tensors)
            data.update(encoded)
        if not data:
            raise ValueError("nothing to process: pass images= and/or comments= / users= / text=")
        return BatchFeature(data=data, tensor_type=return_tensors)

    @property
    def model_input_names(self) -> list[str]:
        names = list(self.image_processor.model_input_names)
        if self.tokenizer is not None:
            names += [n for n in self.tokenizer.model_input_names if n not in names]
        return names

    # -- saving / loading without a tokenizer -----------------------------------------------------------

    def save_pretrained(self, save_directory: Union[str, os.PathLike], push_to_hub: bool = False,
                        **kwargs: Any) -> list[str]:
        if self.tokenizer is not None:
            return super().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)
        if push_to_hub:
            raise NotImplementedError("push an image-only processor with huggingface_hub.upload_folder instead")
        os.makedirs(save_directory, exist_ok=True)
        path = os.path.join(save_directory, PROCESSOR_NAME)
        self.to_json_file(path)
        return [path]

    @classmethod
    def _load_tokenizer_from_pretrained(cls, sub_processor_type: str, pretrained_model_name_or_path: Any,
                                        subfolder: str = "", **kwargs: Any) -> Any:
        # Image-only variants carry no tokenizer files: load None instead of failing.
        hub_kwargs = {k: kwargs[k] for k in ("cache_dir", "revision", "token", "local_files_only") if k in kwargs}
        found = cached_file(
            pretrained_model_name_or_path, "tokenizer_config.json", subfolder=subfolder,
            _raise_exceptions_for_missing_entries=False, _raise_exceptions_for_connection_errors=False,
            **hub_kwargs,
        )
        if found is None:
            return None
        return super()._load_tokenizer_from_pretrained(sub_processor_type, pretrained_model_name_or_path,
                                                       subfolder=subfolder, **kwargs)


__all__ = ["AesMambaProcessor", "as_user_profile"]
