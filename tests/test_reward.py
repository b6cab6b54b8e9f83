"""AestheticReward: differentiable preprocessing, gradients, gradient ascent on a trained model, the DDPO and
AlignProp/ReFL call signatures, head selection, text tasks, low precision and bad inputs.

Models are tiny and their processors resize to 32×32 (8×8 tokens), where the plain PyTorch scan is fast.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from _io_helpers import random_image, save_tiny_model
from _training_toy import SIZE, make_toy_images, toy_config
from aesmamba_hf import load_model, load_reward
from aesmamba_hf.reward import (
    AestheticReward,
    PixelInputError,
    PixelPreprocessor,
    ddpo_reward_fn,
    differentiable_reward_fn,
    parse_value_range,
)

USER = {"userId": "u1", "personality-O": 7, "personality-C": 5, "personality-E": 6, "personality-A": 8,
        "personality-N": 4, "artExperience": "proficient", "photographyExperience": "competent"}


def _small_processor(folder: Path) -> None:
    """Resize to SIZE×SIZE: the model is scored at 8×8 tokens."""
    loaded = load_model(folder, device="cpu")
    loaded.processor.image_processor.size = {"height": SIZE, "width": SIZE}
    loaded.processor.save_pretrained(folder)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reward_models")
    folders = {}
    for task, dataset in (("V", "TAD66K"), ("F", "PARA"), ("M", "AVA"), ("P", "PARA")):
        folders[task] = save_tiny_model(root / task, task=task, dataset=dataset, seed=1)
        _small_processor(folders[task])
    return folders


def _images(batch: int = 2, seed: int = 0, size: tuple[int, int] = (40, 56)) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, *size, generator=gen)


# ---------------------------------------------------------------------------------------------------------
# preprocessing


def test_preprocessing_matches_the_processor_on_8bit_images(models):
    loaded = load_model(models["V"], device="cpu")
    image = random_image(3, size=(70, 50))
    reference = loaded.processor(images=image, return_tensors="pt")["pixel_values"]
    pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255
    pre = PixelPreprocessor.from_processor(loaded.processor)
    assert pre.size == (SIZE, SIZE) and pre.mode == "bicubic"
    ours = pre(pixels, (0.0, 1.0))
    assert ours.shape == reference.shape == (1, 3, SIZE, SIZE)
    # PIL rounds to 8 bits between its passes: about 1/255 apart, in units of the normalised input
    std = torch.tensor(loaded.processor.image_processor.image_std).view(1, 3, 1, 1)
    assert ((ours - reference) * std).abs().mean() < 2 / 255
    # (-1, 1) input of the same image gives the same model input
    assert torch.allclose(pre(pixels * 2 - 1, (-1.0, 1.0)), ours, atol=1e-5)


def test_value_range_must_be_declared_and_supported():
    assert parse_value_range((0, 1)) == (0.0, 1.0) and parse_value_range("[-1, 1]") == (-1.0, 1.0)
    for bad in ((0, 255), "0-1", None, (1, 0)):
        with pytest.raises(ValueError, match="value_range"):
            parse_value_range(bad)


# ---------------------------------------------------------------------------------------------------------
# gradients


def test_gradient_is_finite_and_nonzero(models):
    reward = load_reward(models["V"], value_range=(0, 1), device="cpu")
    images = _images().requires_grad_()
    rewards = reward(images)
    assert rewards.shape == (2,) and rewards.dtype == torch.float32 and rewards.requires_grad
    rewards.sum().backward()
    assert torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0
    # each image's reward depends on that image only
    images.grad = None
    reward(images)[0].backward()
    assert images.grad[1].abs().sum() == 0 and images.grad[0].abs().sum() > 0
    # the judge is frozen: no gradient reaches its weights, and it stays in eval mode inside a trained module
    assert all(p.grad is None and not p.requires_grad for p in reward.model.parameters())
    assert not reward.train().model.training


def _ascend(reward: AestheticReward, image: torch.Tensor, steps: int, lr: float) -> tuple[float, float]:
    """Gradient ascent on the pixels (kept inside the declared range) → (first reward, final reward)."""
    image = image.clone().requires_grad_()
    optimizer = torch.optim.Adam([image], lr=lr)
    first = None
    for _ in range(steps):
        optimizer.zero_grad()
        value = reward(image)
        first = float(value) if first is None else first
        (-value.sum()).backward()
        optimizer.step()
        with torch.no_grad():
            image.clamp_(0.0, 1.0)
    return first, float(reward(image.detach()))


def test_gradient_ascent_raises_the_score(models):
    reward = load_reward(models["V"], value_range=(0, 1), device="cpu")
    first, final = _ascend(reward, _images(batch=1, size=(32, 32)) * 0.5 + 0.25, steps=4, lr=0.05)
    assert final > first


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory) -> Path:
    """The toy task of the training tests (score = 10 × brightness), learnt by fit() and saved like a user's."""
    from aesmamba_hf import AesMambaConfig, AesMambaForAestheticAssessment
    from aesmamba_hf.inference.loading import default_processor_for_config
    from aesmamba_hf.training.finetune import fit

    root = tmp_path_factory.mktemp("trained")
    train = make_toy_images(root / "img", 96, seed=0, prefix="train")
    # the settings test_training shows to learn the task, with the default (fused) scan: the reference scan's
    # per-step autograd graph made this fixture take minutes
    cfg = toy_config(root / "run", eval_strategy="no", scan_backend="auto", epochs=15)
    torch.manual_seed(0)
    config = AesMambaConfig.tiny(task="V", dataset="TAD66K")
    model = AesMambaForAestheticAssessment(config)
    processor = default_processor_for_config(config)
    processor.image_processor.size = {"height": SIZE, "width": SIZE}
    fit(cfg, model, processor, train, quiet=True)
    folder = root / "model"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.mark.slow  # trains the toy model first (about 20 s on 2 cores)
def test_gradient_ascent_raises_the_trained_models_score(trained_model):
    reward = load_reward(trained_model, value_range=(0, 1), device="cpu")
    dark, bright = torch.full((1, 3, 48, 48), 0.25), torch.full((1, 3, 48, 48), 0.75)
    with torch.no_grad():
        learnt = float(reward(bright) - reward(dark))
    assert learnt > 1.0  # the model learnt the task (score = 10 x brightness): its score follows the image
    noise = 0.03 * torch.randn(1, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    start = (dark + noise).clamp(0, 1)
    first, final = _ascend(reward, start, steps=10, lr=0.02)
    # the same pixel budget (each pixel moves at most 10 x 0.02) spent in a random direction does not do it
    budget = 0.2 * torch.randn(start.shape, generator=torch.Generator().manual_seed(1)).sign()
    with torch.no_grad():
        random_move = float(reward((start + budget).clamp(0, 1)))
    assert final > first + 0.03 * learnt
    assert final > random_move

# ---------------------------------------------------------------------------------------------------------
# trainer signatures and modes


def test_ddpo_and_differentiable_signatures_on_a_batch(models):
    reward = load_reward(models["V"], value_range=(-1, 1), device="cpu")
    images = (_images(batch=3) * 2 - 1).requires_grad_()
    prompts, metadata = ["a cat", "a dog", "a bird"], [{}, {}, {}]
    ddpo_rewards, ddpo_meta = ddpo_reward_fn(reward)(images, prompts, metadata)
    assert ddpo_rewards.shape == (3,) and ddpo_rewards.grad_fn is None and not ddpo_rewards.requires_grad
    assert ddpo_meta["heads"] == {"aesthetic": 1.0} and ddpo_meta["value_range"] == (-1.0, 1.0)
    assert ddpo_meta["score_ranges"] == {"aesthetic": (0.0, 10.0)}
    diff_rewards, _ = differentiable_reward_fn(reward)(images, prompts, metadata)
    assert torch.allclose(diff_rewards.detach(), ddpo_rewards)
    (10.0 - diff_rewards.mean()).backward()  # TRL AlignPropTrainer's loss
    assert torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="2 prompts for 3 images"):
        ddpo_reward_fn(reward)(images, prompts[:2], metadata[:2])


def test_no_grad_mode_for_policy_gradients(models):
    loaded = load_model(models["V"], device="cpu")
    reward = AestheticReward(loaded.model, loaded.processor, value_range=(0, 1), differentiable=False)
    images = _images().requires_grad_()
    rewards = reward(images)
    assert rewards.grad_fn is None and not rewards.requires_grad
    with pytest.raises(ValueError, match="differentiable=True"):
        differentiable_reward_fn(reward)
    differentiable = AestheticReward(loaded.model, loaded.processor, value_range=(0, 1))
    assert torch.allclose(differentiable(images).detach(), rewards)


def test_low_precision_autocast_and_half_inputs(models):
    reference = load_reward(models["V"], value_range=(0, 1), device="cpu")
    low = load_reward(models["V"], value_range=(0, 1), device="cpu", autocast_dtype=torch.bfloat16)
    images = _images()
    half = images.bfloat16().requires_grad_()
    rewards = low(half)
    assert rewards.dtype == torch.float32 and torch.isfinite(rewards).all()
    expected = reference(images).detach()
    assert torch.allclose(rewards.detach(), expected, atol=0.05 * float(expected.abs().max()) + 1e-3)
    rewards.sum().backward()
    assert half.grad.dtype == torch.bfloat16 and torch.isfinite(half.grad.float()).all()
    with pytest.raises(ValueError, match="autocast_dtype"):
        load_reward(models["V"], value_range=(0, 1), device="cpu", autocast_dtype=torch.float64)


def test_views_average_random_crops_reproducibly(models):
    loaded = load_model(models["V"], device="cpu")

    def reward(seed):
        return AestheticReward(loaded.model, loaded.processor, value_range=(0, 1), views=3,
                               generator=torch.Generator().manual_seed(seed))

    images = _images(batch=1).requires_grad_()
    first = reward(5)(images)
    assert torch.equal(first, reward(5)(images)) and not torch.equal(first, reward(6)(images))
    first.sum().backward()
    assert torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------------------
# heads and text tasks


def test_head_selection_and_weighted_heads(models):
    loaded = load_model(models["F"], device="cpu")
    names = loaded.config.head_names
    images = _images()
    every = AestheticReward(loaded.model, loaded.processor, value_range=(0, 1)).head_scores(images)
    assert every.shape == (2, 9)
    assert torch.allclose(AestheticReward(loaded.model, loaded.processor, value_range=(0, 1))(images),
                          every[:, names.index("aesthetic")])
    quality = AestheticReward(loaded.model, loaded.processor, value_range=(0, 1), head="quality")
    assert torch.allclose(quality(images), every[:, names.index("quality")])
    mixed = AestheticReward(loaded.model, loaded.processor, value_range=(0, 1), head={"aesthetic": 1.0, "dof": -0.5},
                            unit_scale=True)
    low, high = loaded.config.heads[0]["score_range"]  # PARA heads share 1-5
    unit = (every - low) / (high - low)
    expected = unit[:, names.index("aesthetic")] - 0.5 * unit[:, names.index("dof")]
    assert torch.allclose(mixed(images), expected, atol=1e-6)
    assert mixed.reward_range == (-0.5, 1.0)
    with pytest.raises(ValueError, match="unknown head.*colour"):
        AestheticReward(loaded.model, loaded.processor, value_range=(0, 1), head="colour")


def test_text_tasks_take_their_text_or_are_refused(models):
    m = load_model(models["M"], device="cpu")
    images = _images()
    plain = AestheticReward(m.model, m.processor, value_range=(0, 1))(images)
    commented = AestheticReward(m.model, m.processor, value_range=(0, 1), comments="Lovely light, sharp eyes.")
    with_text = commented(images)
    assert torch.isfinite(with_text).all() and not torch.equal(with_text, plain)  # the comment is fused
    with pytest.raises(ValueError, match="2 comments for 3 images"):
        AestheticReward(m.model, m.processor, value_range=(0, 1), comments=["a", "b"])(_images(batch=3))
    p = load_model(models["P"], device="cpu")
    with pytest.raises(ValueError, match="P model scores images for one user"):
        AestheticReward(p.model, p.processor, value_range=(0, 1))
    personal = AestheticReward(p.model, p.processor, value_range=(0, 1), user=USER)(images)
    assert personal.shape == (2,) and torch.isfinite(personal).all()
    v = load_model(models["V"], device="cpu")
    with pytest.raises(ValueError, match="comments= needs an M model"):
        AestheticReward(v.model, v.processor, value_range=(0, 1), comments="nice")


# ---------------------------------------------------------------------------------------------------------
# bad inputs


@pytest.mark.parametrize("images,message", [
    (torch.rand(3, 32, 32), r"4-D \(B, 3, H, W\).*images\[None\]"),
    (torch.rand(2, 32, 32, 3), "channels-last"),
    (torch.rand(2, 1, 32, 32), "3 \\(RGB\\) channels"),
    (torch.zeros(0, 3, 32, 32), "empty"),
    ((torch.rand(2, 3, 8, 8) * 255).to(torch.uint8), "float tensor.*8-bit images"),
    (np.zeros((1, 3, 8, 8), dtype=np.float32), "torch.Tensor"),
])
def test_bad_shapes_and_dtypes_are_named(models, images, message):
    reward = load_reward(models["V"], value_range=(0, 1), device="cpu")
    with pytest.raises(PixelInputError, match=message):
        reward(images)


def test_values_outside_the_range_and_nan_are_refused(models):
    reward = load_reward(models["V"], value_range=(0, 1), device="cpu")
    images = _images(batch=3)
    nan = images.clone()
    nan[2, 0, 1, 1] = float("nan")
    with pytest.raises(PixelInputError, match=r"images \[2\].*NaN or infinite"):
        reward(nan)
    signed = images * 2 - 1  # a [-1, 1] batch declared as [0, 1]
    with pytest.raises(PixelInputError, match=r"leave the declared value_range \[0.0, 1.0\].*min -"):
        reward(signed)
    overshoot = images.clone()
    overshoot[1] += 0.05
    with pytest.raises(PixelInputError, match=r"images \[1\]"):
        reward(overshoot)
    clamping = load_reward(models["V"], value_range=(0, 1), device="cpu", out_of_range="clamp")
    assert torch.allclose(clamping(overshoot), clamping(overshoot.clamp(0, 1)))
    assert torch.isfinite(reward(images.clamp(0, 1) * 1.0005)).all()  # within the 1e-3 tolerance
