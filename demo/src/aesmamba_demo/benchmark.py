"""A small, deterministic *rated* aesthetics benchmark built from the bundled photographs.

Every bundled photo (``aesmamba_demo/photos``, see its MANIFEST.json) is turned into many derived square
images (a view of the photo, zoomed and placed at random) by controlled, aesthetics-relevant edits of known
strength (defocus blur, noise, JPEG artefacts, exposure, saturation, colour cast, off-centre crop, tilt).
Simulated raters with PARA-style characters (art and photography experience, Big-Five scores, age, gender,
education) then score every image. Like real raters they never see the original: they judge softness, grain,
blocking, brightness, colourfulness and tint as they show in the delivered pixels (:func:`perceived_factors`,
so an unedited hazy photo looks soft and an unedited night scene dark), the framing by where the detail sits
(an off-centre crop counts as far as it moves it) and a tilt as far as it shows on lines that were level or
plumb (a tilted horizon, not a tilted cat or slope). How much each factor matters to a rater depends on the
rater's character, so personal taste is real, learnable signal:

- experienced photographers penalise blur, noise and JPEG artefacts far more than beginners;
- high-openness raters prefer saturated images and like colour casts, photographers dislike casts;
- art-experienced raters like off-centre framing, beginners and conscientious raters prefer it centred;
- extraverts prefer brighter exposures, neurotic raters darker ones; tilt bothers conscientious raters;
- each character has its own preferred scene categories (content preference);
- agreeable raters are lenient, experts harsh and use more of the scale;
- and each rater has taste of their own that no trait predicts (:data:`PERSONAL_FACTORS`): a personal weight on
  how a photo looks — softness, brightness, colourfulness, tint, framing — what per-user few-shot learning finds.

The result is written twice, in the PARA layout (GIAA + PIAA CSVs, UserInfo) and in the AVA layout
(``AVA.txt`` vote histograms of a larger simulated crowd, split lists, AVA-Captions CSVs whose comments
mention what a commenter noticed), exactly as the team contract describes, plus a ground-truth table of
the edit strengths (``factors.csv``) for non-deep baselines. Train/validation/test are disjoint by source
photo. Only numpy and PIL are used; same seed => byte-identical CSVs and images.

    from aesmamba_demo.benchmark import generate_benchmark
    paths = generate_benchmark("/tmp/aesmamba-demo", seed=0, size="quick")
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from aesmamba_hf.dataset_specs import PARA_ATTRIBUTES
from aesmamba_hf.prompts import BIG_FIVE_RANGE, EXPERIENCE_LEVELS

from .baseline import _IMMERKAER, _conv3

PHOTOS_DIR = Path(__file__).resolve().parent / "photos"
# 2: raters judge the delivered pixels (seen_* factors), square 128-px images; 3: a tilt shows on level lines
BENCHMARK_FORMAT_VERSION = 3

# Scene categories of the bundled photos (PARA `semantic` column) and their AVA semantic tag ids.
SEMANTIC_TAGS = {
    "portrait": 1, "animal": 2, "plant": 3, "landscape": 4, "architecture": 5,
    "still_life": 6, "object": 7, "indoor": 8, "sky": 9,
}
# The simulated raters' Big-Five scores: integers 2..10, as from a short inventory with two 1-5 items per trait
# (BFI-10 style), a sub-range of the PARA range the package accepts (``aesmamba_hf.prompts.BIG_FIVE_RANGE``,
# 1..10; checked by the tests). The rater model centres and scales the traits on this range, so it fixes
# the benchmark: widening it would change every simulated rating and the demo's measured numbers.
SIMULATED_BIG_FIVE_RANGE = (2, 10)
AGE_GROUPS = ("18-21", "22-25", "26-29", "30-34", "35-39", "40-49", "50+")
EDUCATION_LEVELS = ("senior_high_school", "junior_college", "university", "master", "doctor")
EMOTIONS = ("amusement", "awe", "contentment", "excitement", "disgust", "fear", "sadness", "neutral")

# Ground-truth edit factors, normalised: magnitudes in [0, 1], signed ones in [-1, 1].
FACTOR_NAMES = ("blur", "noise", "jpeg", "exposure", "saturation", "cast", "crop", "tilt")
# What a rater's own taste (no trait predicts it) weighs: how a photo looks — softness, brightness, colourfulness,
# tint, framing. Defects (noise, blocking, a tilt) bother raters as their traits say, not by personal liking.
PERSONAL_FACTORS = ("blur", "exposure", "saturation", "cast", "crop")
MAX_BLUR_SIGMA = 3.0  # px at the derived resolution
MAX_NOISE_SIGMA = 0.10  # fraction of full scale
MAX_EXPOSURE_EV = 1.5
SATURATION_LOG2_RANGE = 1.2  # factor = 2 ** (1.2 * f) in [0.44, 2.3]
MAX_CAST = 0.16  # added RGB offset at full strength
MAX_TILT_DEG = 10.0
CAST_HUES = {  # RGB offset direction of each colour cast
    "warm": (1.0, 0.25, -0.8), "cool": (-0.6, 0.05, 1.0), "green": (-0.45, 0.9, -0.45),
    "magenta": (0.75, -0.85, 0.65),
}
FINAL_JPEG_QUALITY = 92

GIAA_HIST_BINS = {  # per-bin rater-count columns of the GIAA CSVs (quality has mean/std only)
    "aestheticScore": tuple(f"{v:.1f}" for v in np.arange(1.0, 5.01, 0.5)),
    **{c: tuple(str(v) for v in range(1, 6)) for c in (
        "compositionScore", "colorScore", "dofScore", "lightScore", "contentScore", "contentPreference",
        "willingnessToShare")},
}
PIAA_SCORE_COLUMNS = (
    "aestheticScore", "qualityScore", "compositionScore", "colorScore", "dofScore", "lightScore",
    "contentScore", "contentPreference", "willingnessToShare",
)
PIAA_COLUMNS = ("userId", "imageName", "sessionId", *PIAA_SCORE_COLUMNS, "imgEmotion", "difficultyOfJudgment",
                "semantic")
USER_INFO_COLUMNS = ("userId", "age", "gender", "EducationalLevel", "artExperience", "photographyExperience",
                     "personality-E", "personality-A", "personality-N", "personality-O", "personality-C")
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class BenchmarkSize:
    num_photos: int | None  # None = all bundled photos
    variants_per_photo: int
    num_users: int
    rating_probability: float  # chance that a given user rated a given image
    crowd_pool: int  # virtual AVA voters
    votes_per_image: tuple[int, int]
    comments_per_image: tuple[int, int]
    short_side: int = 128  # the demo models' input size: edits are rated as they show at this size
    square: bool = True  # square views (at Edits.window_pos), so the processor never resamples them


SIZES = {
    # 3-7 comments per image: AVA-Captions has ~5 per image (Ghosal et al. 2019, ~230k images)
    "default": BenchmarkSize(None, 145, 30, 0.7, 400, (60, 150), (3, 7)),
    "quick": BenchmarkSize(12, 8, 16, 0.8, 120, (30, 60), (2, 4), short_side=64),
}


@dataclass
class BenchmarkPaths:
    """Where :func:`generate_benchmark` wrote everything (all under ``root``)."""

    root: Path
    para_root: Path  # PARA layout: imgs/<sessionId>/<imageName>, annotation/PARA-*.csv
    ava_root: Path  # AVA layout: images/<id>.jpg, AVA.txt, {train,validation,test}.txt, captions/*.csv
    manifest: Path  # benchmark_manifest.json: parameters, counts, file list with sha256
    factors: Path  # factors.csv: ground-truth edit strengths per derived image
    splits: Path  # splits.csv: image -> source photo -> split
    user_taste: Path  # user_taste.csv: the hidden per-user taste parameters
    readme: Path
    stats: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------------------
# photos


def load_photo_manifest(photos_dir: str | os.PathLike = PHOTOS_DIR) -> list[dict]:
    """Entries of ``photos/MANIFEST.json`` (file, source package/version/path, license, author, sha256...)."""
    with open(Path(photos_dir) / "MANIFEST.json", encoding="utf-8") as f:
        return json.load(f)["photos"]


def _rng(seed: int, *keys: int) -> np.random.Generator:
    # One independent stream per purpose/photo/image, so a change in one part never shifts another.
    return np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFF, *keys]))


# ----------------------------------------------------------------------------------------------------------
# edits


@dataclass(frozen=True)
class Edits:
    """Raw edit parameters of one derived image (all zero = the clean photo)."""

    blur_sigma: float = 0.0
    noise_sigma: float = 0.0
    jpeg_quality: int = 0  # 0 = no extra JPEG round trip
    exposure_ev: float = 0.0
    saturation_factor: float = 1.0
    cast_strength: float = 0.0  # in [0, 1]
    cast_hue: str = "none"
    crop_scale: float = 1.0
    crop_offset: float = 0.0  # distance of the crop centre from the image centre, fraction of the maximum
    crop_direction_deg: float = 0.0
    tilt_deg: float = 0.0
    window_pos: float = 0.5  # square benchmarks: where the square sits along the photo's long side (0..1)

    def factors(self) -> dict[str, float]:
        """Normalised factors: magnitudes in [0, 1]; exposure, saturation, tilt signed in [-1, 1]."""
        return {
            "blur": self.blur_sigma / MAX_BLUR_SIGMA,
            "noise": self.noise_sigma / MAX_NOISE_SIGMA,
            "jpeg": 0.0 if self.jpeg_quality == 0 else (90 - self.jpeg_quality) / 85,
            "exposure": self.exposure_ev / MAX_EXPOSURE_EV,
            "saturation": math.log2(self.saturation_factor) / SATURATION_LOG2_RANGE,
            "cast": self.cast_strength,
            "crop": self.crop_offset,
            "tilt": self.tilt_deg / MAX_TILT_DEG,
        }


def sample_edits(rng: np.random.Generator, clean: bool = False) -> Edits:
    """Random edits: each factor is active with probability 0.4 (at least one), strength in (0.15, 1]."""
    if clean:
        return Edits()
    active = rng.random(len(FACTOR_NAMES)) < 0.4
    if not active.any():
        active[rng.integers(len(FACTOR_NAMES))] = True
    strength = rng.uniform(0.15, 1.0, len(FACTOR_NAMES))
    sign = np.where(rng.random(len(FACTOR_NAMES)) < 0.5, -1.0, 1.0)
    hue = list(CAST_HUES)[int(rng.integers(len(CAST_HUES)))]
    crop_scale = float(rng.uniform(0.6, 0.75))
    crop_dir = float(rng.integers(8)) * 45.0
    on = dict(zip(FACTOR_NAMES, active.tolist()))
    s = dict(zip(FACTOR_NAMES, strength.tolist()))  # python floats: PIL filters reject numpy scalars
    sg = dict(zip(FACTOR_NAMES, sign.tolist()))
    return Edits(
        blur_sigma=round(MAX_BLUR_SIGMA * s["blur"], 3) if on["blur"] else 0.0,
        noise_sigma=round(MAX_NOISE_SIGMA * s["noise"], 4) if on["noise"] else 0.0,
        jpeg_quality=int(round(90 - 85 * s["jpeg"])) if on["jpeg"] else 0,
        exposure_ev=round(MAX_EXPOSURE_EV * s["exposure"] * sg["exposure"], 3) if on["exposure"] else 0.0,
        saturation_factor=(round(2.0 ** (SATURATION_LOG2_RANGE * s["saturation"] * sg["saturation"]), 4)
                           if on["saturation"] else 1.0),
        cast_strength=round(float(s["cast"]), 3) if on["cast"] else 0.0,
        cast_hue=hue if on["cast"] else "none",
        # Without an off-centre crop the frame is still zoomed a little (centred): more distinct views per photo.
        crop_scale=round(crop_scale, 3) if on["crop"] else round(float(rng.uniform(0.7, 1.0)), 3),
        crop_offset=round(float(s["crop"]), 3) if on["crop"] else 0.0,
        crop_direction_deg=crop_dir if on["crop"] else 0.0,
        tilt_deg=round(MAX_TILT_DEG * s["tilt"] * sg["tilt"], 2) if on["tilt"] else 0.0,
        window_pos=round(float(rng.uniform(0.0, 1.0)), 3),
    )


def _geometry(photo: Image.Image, edits: Edits) -> Image.Image:
    w, h = photo.size
    if edits.tilt_deg:
        # Rotate, then keep the largest centred window of the same aspect ratio (no black corners).
        t = math.radians(abs(edits.tilt_deg))
        c, s = math.cos(t), math.sin(t)
        scale = min(w / (w * c + h * s), h / (w * s + h * c))
        photo = photo.rotate(edits.tilt_deg, resample=Image.Resampling.BICUBIC)
        cw, ch = w * scale, h * scale
        photo = photo.crop((round((w - cw) / 2), round((h - ch) / 2), round((w + cw) / 2), round((h + ch) / 2)))
        w, h = photo.size
    if edits.crop_scale < 1.0:
        cw, ch = w * edits.crop_scale, h * edits.crop_scale
        a = math.radians(edits.crop_direction_deg)
        cx = w / 2 + edits.crop_offset * (w - cw) / 2 * math.cos(a)
        cy = h / 2 + edits.crop_offset * (h - ch) / 2 * math.sin(a)
        photo = photo.crop((round(cx - cw / 2), round(cy - ch / 2), round(cx + cw / 2), round(cy + ch / 2)))
    return photo


def apply_edits(photo: Image.Image, edits: Edits, short_side: int, rng: np.random.Generator,
                square: bool = False) -> Image.Image:
    """Derive one image: with ``square``, first a square view of the photo at ``edits.window_pos`` (and a
    ``short_side`` square output); the geometric edits; resize to ``short_side``; then the pixel edits in the
    order a camera/editor would cause them (optics, exposure, colour, sensor noise, compression)."""
    img = photo.convert("RGB")
    if square:  # the square view first (at window_pos along the long side), then the geometric edits inside it
        w, h = img.size
        s = min(w, h)
        left, top = round((w - s) * edits.window_pos), round((h - s) * edits.window_pos)
        img = img.crop((left, top, left + s, top + s))
    img = _geometry(img, edits)
    w, h = img.size
    k = short_side / min(w, h)
    size = (short_side, short_side) if square else (max(1, round(w * k)), max(1, round(h * k)))
    img = img.resize(size, Image.Resampling.LANCZOS)
    if edits.blur_sigma > 0:
        img = img.filter(ImageFilter.GaussianBlur(edits.blur_sigma))
    x = np.asarray(img, dtype=np.float32) / 255.0
    if edits.exposure_ev:
        x = np.clip((x ** 2.2) * (2.0 ** edits.exposure_ev), 0.0, 1.0) ** (1 / 2.2)  # in ~linear light
    if edits.saturation_factor != 1.0:
        gray = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        x = gray[..., None] + edits.saturation_factor * (x - gray[..., None])
    if edits.cast_strength:
        d = np.array(CAST_HUES[edits.cast_hue], dtype=np.float32)
        x = x + MAX_CAST * edits.cast_strength * d / np.linalg.norm(d)
    if edits.noise_sigma:
        x = x + rng.standard_normal(x.shape, dtype=np.float32) * edits.noise_sigma
    img = Image.fromarray(np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8))
    if edits.jpeg_quality:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=edits.jpeg_quality)
        buf.seek(0)
        img = Image.open(buf).convert("RGB")
    return img


def _half_res_gradients(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Central differences of the 2x2-averaged image (where grain has mostly averaged out)."""
    h, w = gray.shape
    half = gray[: h // 2 * 2, : w // 2 * 2].reshape(h // 2, 2, w // 2, 2).mean((1, 3))
    return half[1:-1, 2:] - half[1:-1, :-2], half[2:, 1:-1] - half[:-2, 1:-1]


def perceived_factors(image: Image.Image) -> dict[str, float]:
    """What a rater *sees* in the delivered pixels, on the scale of :meth:`Edits.factors`.

    A rater never sees the original photo, so softness, grain, blocking, brightness, colourfulness and tint are
    judged absolutely: a hazy photo looks soft and a dark scene looks dark even unedited, and an edit that does
    not show (noise on dense texture) is not penalised. Measured on the final JPEG-decoded pixels:

    - blur: the mean gradient magnitude at half resolution (where grain has mostly averaged out), log, mapped so
      that a crisp, detailed photo is 0 and a heavily defocused or featureless one 1;
    - noise: Immerkaer's noise estimate on the flattest 30% of the image (grain shows on smooth areas);
    - jpeg: 8-px block-border jumps over the other jumps (log ratio);
    - exposure: mean luminance around mid-grey, signed; saturation: log2 of the mean opponent chroma of the
      mid-tones around a typical photo's, signed; cast: the magnitude of the mid-tones' mean chroma (tint);
    - crop (visual balance): the distance of the gradient-energy centroid from the frame centre, so an off-centre
      crop counts as far as it moves the detail, and a photo whose subject sits off-centre counts unedited.

    The tilt is judged by :func:`seen_factors` (it needs to know what is level).
    """
    x = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    r, g, b = (np.ascontiguousarray(x[..., c]) for c in range(3))
    gray = 0.299 * r + 0.587 * g + 0.114 * b
    gx, gy = _half_res_gradients(gray)
    mag = np.hypot(gx, gy)
    acuity = float(np.log(mag.mean() + 1e-3))
    # Visual weight: where the detail sits, as the distance of the gradient centroid from the frame centre.
    weight = mag / (mag.sum() + 1e-12)
    off_x = float(weight.sum(0) @ np.linspace(-0.5, 0.5, weight.shape[1]))
    off_y = float(weight.sum(1) @ np.linspace(-0.5, 0.5, weight.shape[0]))
    noise_map = np.abs(_conv3(gray, _IMMERKAER)) * math.sqrt(math.pi / 2) / 6
    coarse = np.kron(np.pad(mag, 1, mode="edge"), np.ones((2, 2), dtype=np.float32))[1:, 1:]
    coarse = coarse[: noise_map.shape[0], : noise_map.shape[1]]
    noise_map = noise_map[: coarse.shape[0], : coarse.shape[1]]
    noise = float(noise_map[coarse <= np.quantile(coarse, 0.3)].mean())
    jumps = []
    for axis in (1, 0):
        d = np.abs(np.diff(gray, axis=axis)).mean(axis=1 - axis)
        on_border = np.arange(d.shape[0]) % 8 == 7
        jumps.append(math.log((d[on_border].mean() + 1e-4) / (d[~on_border].mean() + 1e-4)))
    mid = (gray > 0.1) & (gray < 0.9)
    rg, yb = (r - g)[mid], (0.5 * (r + g) - b)[mid]
    chroma = float(np.hypot(rg, yb).mean()) if mid.any() else 0.0
    tint = float(np.hypot(rg.mean(), yb.mean())) if mid.any() else 0.0
    return {
        "blur": float(np.clip((-1.8 - acuity) / 2.0, 0.0, 1.0)),
        "noise": float(np.clip((noise - 0.004) / 0.06, 0.0, 1.0)),
        "jpeg": float(np.clip((float(np.mean(jumps)) - 0.1) / 0.9, 0.0, 1.0)),
        "exposure": float(np.clip((float(gray.mean()) - 0.45) / 0.3, -1.0, 1.0)),
        "saturation": float(np.clip(math.log2((chroma + 1e-3) / 0.17) / 2.0, -1.0, 1.0)),
        "cast": float(np.clip((tint - 0.05) / 0.35, 0.0, 1.0)),
        "crop": float(np.clip(math.hypot(off_x, off_y) / 0.25, 0.0, 1.0)),
    }


def line_visibility(image: Image.Image, tilt_deg: float = 0.0) -> float:
    """How much a tilt of ``tilt_deg`` (the edit applied) shows in this delivered frame, in [0, 1]: how strongly
    its edges run along the axes the frame had before the tilt, i.e. lines that were level or plumb. Measured as
    the energy-weighted mean of exp(4i*theta) over the half-resolution edge directions, turned back by the tilt;
    its real part is large when the edges were axis-aligned (a horizon, a wall, a mast) and small or negative for
    fur, grass, clouds or diagonal lines, where nothing tells a viewer what is level."""
    gx, gy = _half_res_gradients(np.asarray(image.convert("L"), dtype=np.float32) / 255.0)
    energy = gx * gx + gy * gy
    mean_direction = complex((energy * np.exp(4j * np.arctan2(gy, gx))).sum() / (energy.sum() + 1e-12))
    level_alignment = (mean_direction * np.exp(4j * math.radians(tilt_deg))).real
    return float(np.clip((level_alignment - 0.1) / 0.3, 0.0, 1.0))


def seen_factors(image: Image.Image, edits: Edits) -> dict[str, float]:
    """The rater model's inputs: :func:`perceived_factors` of the delivered pixels, and the tilt as far as it
    shows (the edit's tilt times :func:`line_visibility`). Raters judge a tilt against lines they know to be level
    or plumb, so a tilted horizon counts and a tilted cat or slope does not."""
    return {**perceived_factors(image), "tilt": edits.factors()["tilt"] * line_visibility(image, edits.tilt_deg)}


# ----------------------------------------------------------------------------------------------------------
# raters


def sample_users(rng: np.random.Generator, n: int, prefix: str = "user") -> list[dict]:
    """PARA-style user rows (``USER_INFO_COLUMNS``); experience and openness are mildly correlated."""
    users = []
    lo, hi = SIMULATED_BIG_FIVE_RANGE
    for i in range(n):
        art = int(rng.choice(4, p=[0.3, 0.3, 0.25, 0.15]))
        photo = int(np.clip(art + rng.choice([-1, 0, 0, 1, 2]) - (1 if rng.random() < 0.3 else 0), 0, 3))
        big5 = np.clip(np.round(rng.normal(6.0, 1.8, 5)), lo, hi).astype(int)
        big5[3] = int(np.clip(big5[3] + (art >= 2) * rng.integers(0, 3), lo, hi))  # O
        users.append({
            "userId": f"{prefix}{i + 1:03d}",
            "age": AGE_GROUPS[int(rng.choice(len(AGE_GROUPS), p=[0.18, 0.3, 0.2, 0.12, 0.08, 0.08, 0.04]))],
            "gender": "female" if rng.random() < 0.5 else "male",
            "EducationalLevel": EDUCATION_LEVELS[int(rng.choice(5, p=[0.1, 0.2, 0.45, 0.2, 0.05]))],
            "artExperience": EXPERIENCE_LEVELS[art],
            "photographyExperience": EXPERIENCE_LEVELS[photo],
            "personality-E": int(big5[0]), "personality-A": int(big5[1]), "personality-N": int(big5[2]),
            "personality-O": int(big5[3]), "personality-C": int(big5[4]),
        })
    return users


TASTE_NAMES = (
    "blur_sens", "noise_sens", "jpeg_sens", "exposure_sens", "exposure_pref", "saturation_sens",
    "saturation_pref", "cast_like", "crop_like", "tilt_sens", "leniency", "spread", "technical_weight",
) + tuple(f"likes_{s}" for s in SEMANTIC_TAGS) + tuple(f"own_{f}" for f in PERSONAL_FACTORS)

# Size of each rater's own taste: a per-rater weight on each personal factor, drawn independently of the rater's
# character, so no prompt can carry it (real raters with the same traits disagree). Chosen so the traits still
# explain part of a rater's judgement and the person the rest (median personal share about 0.5 over the default
# raters; see `personal_share` in the demo report).
PERSONAL_TASTE_SCALE = 0.9


def user_taste(users: list[dict], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Hidden taste parameters (one array of len(users) per ``TASTE_NAMES``) from the users' characters
    plus an idiosyncratic part. Trait-driven terms dominate so a model told the user's prompt can learn
    them; the idiosyncratic part is what per-user fine-tuning can add on top."""
    lv = {name: i for i, name in enumerate(EXPERIENCE_LEVELS)}
    ph = np.array([lv[u["photographyExperience"]] for u in users], dtype=float) / 3
    ar = np.array([lv[u["artExperience"]] for u in users], dtype=float) / 3
    lo, hi = SIMULATED_BIG_FIVE_RANGE
    mid, half = (lo + hi) / 2, (hi - lo) / 2

    def trait(key: str) -> np.ndarray:
        return (np.array([u[f"personality-{key}"] for u in users], dtype=float) - mid) / half

    opn, con, ext, agr, neu = (trait(k) for k in "OCEAN")
    xp = 0.6 * ph + 0.4 * ar
    n = len(users)

    def jitter(scale: float) -> np.ndarray:
        return rng.normal(0.0, scale, n)

    t = {
        "blur_sens": (0.3 + 2.7 * ph) * np.exp(jitter(0.15)),
        "noise_sens": (0.2 + 2.0 * xp + 0.5 * np.clip(con, 0, None)) * np.exp(jitter(0.15)),
        "jpeg_sens": (0.2 + 2.0 * xp) * np.exp(jitter(0.15)),
        "exposure_sens": (0.6 + 1.4 * ph) * np.exp(jitter(0.15)),
        "exposure_pref": 0.45 * ext - 0.35 * neu + jitter(0.1),
        "saturation_sens": (0.6 + 0.9 * ar) * np.exp(jitter(0.15)),
        "saturation_pref": 0.75 * opn + 0.25 * ext - 0.45 * ar + jitter(0.1),
        "cast_like": 1.1 * opn - 0.9 * ph - 0.2 * con + jitter(0.15),
        "crop_like": 1.6 * ar - 0.6 - 0.4 * con + jitter(0.15),
        "tilt_sens": (0.2 + 1.3 * ar + 0.6 * (con + 1) / 2) * np.exp(jitter(0.15)),
        "leniency": 0.3 * agr - 0.3 * xp + jitter(0.12),
        "spread": 0.8 + 0.5 * xp + jitter(0.05),
        "technical_weight": 0.25 + 0.35 * xp,
    }
    loadings = {  # scene preference per Big-Five / experience, plus an idiosyncratic part
        "portrait": 0.6 * ext + 0.2 * agr, "animal": 0.6 * agr + 0.2 * neu, "plant": 0.4 * agr + 0.3 * opn - 0.2 * ext,
        "landscape": 0.5 * opn - 0.2 * ext + 0.2 * neu, "architecture": 0.5 * con + 0.4 * ar - 0.2 * agr,
        "still_life": 0.5 * ar + 0.2 * con - 0.2 * ext, "object": 0.4 * con + 0.3 * ph - 0.3 * opn,
        "indoor": 0.4 * neu - 0.3 * opn + 0.2 * con, "sky": 0.6 * opn + 0.2 * neu - 0.2 * con,
    }
    for sem, load in loadings.items():
        t[f"likes_{sem}"] = load + jitter(0.25)
    for name in PERSONAL_FACTORS:  # drawn last: the trait-driven parameters keep their values for a given seed
        t[f"own_{name}"] = jitter(PERSONAL_TASTE_SCALE)
    return t


def personal_factors(img: ImageTable) -> np.ndarray:
    """(N, len(PERSONAL_FACTORS)) what each rater's own taste weighs; exposure by its size (too dark or too
    bright is the same departure from a neutral exposure)."""
    return np.stack([np.abs(img.f[k]) if k == "exposure" else img.f[k] for k in PERSONAL_FACTORS], axis=1)


def personal_taste(img: ImageTable, t: dict[str, np.ndarray]) -> np.ndarray:
    """The part of each rater's aesthetic judgement (N images, U raters) that comes from their own taste and
    from no trait: a personal weight on each factor."""
    f = personal_factors(img)
    return sum(t[f"own_{k}"][None, :] * f[:, i, None] for i, k in enumerate(PERSONAL_FACTORS))


@dataclass
class ImageTable:
    """Per-derived-image arrays used by the rater model (N images)."""

    f: dict[str, np.ndarray]  # normalised factors
    semantic: list[str]
    content_base: np.ndarray  # hidden per-photo appeal
    dof_base: np.ndarray
    light_base: np.ndarray
    composition_base: np.ndarray
    color_base: np.ndarray


def attribute_latents(img: ImageTable, t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Centred latent attribute values, shape (N images, U raters), in points of the 1-5 scale.

    quality <- blur/noise/JPEG; color <- saturation/cast; light <- exposure; composition <- crop/tilt;
    dof <- blur; content/contentPreference <- scene preference; aesthetic mixes them with weights that
    depend on experience; willingness to share follows aesthetic and content preference.
    """
    f = {k: v[:, None] for k, v in img.f.items()}
    g = {k: v[None, :] for k, v in t.items()}
    base = {k: getattr(img, k)[:, None] for k in ("content_base", "dof_base", "light_base",
                                                  "composition_base", "color_base")}
    sem_pref = np.stack([t[f"likes_{s}"] for s in img.semantic]) if img.semantic else np.zeros((0, len(t["leniency"])))
    technical = -(g["blur_sens"] * f["blur"] + g["noise_sens"] * f["noise"] + g["jpeg_sens"] * f["jpeg"] * 0.9)
    exposure_err = f["exposure"] - g["exposure_pref"] * 0.5
    light = base["light_base"] - g["exposure_sens"] * exposure_err ** 2 - 0.25 * f["noise"]
    color = (base["color_base"] - g["saturation_sens"] * (f["saturation"] - g["saturation_pref"]) ** 2
             + g["cast_like"] * f["cast"] - 0.35 * np.abs(f["exposure"]))
    # A soft or badly exposed frame also loses the lines and shapes that carry its composition.
    composition = (base["composition_base"] + g["crop_like"] * f["crop"] - g["tilt_sens"] * np.abs(f["tilt"])
                   - 0.35 * f["blur"] - 0.2 * np.abs(f["exposure"]))
    quality = 0.15 + technical - 0.35 * np.abs(f["exposure"]) - 0.15 * f["cast"]
    dof = base["dof_base"] - 1.2 * g["blur_sens"] * f["blur"]
    # A subject reads worse when it is soft, badly exposed or grainy (content and preference follow quality).
    visibility = 0.9 * f["blur"] + 0.7 * np.abs(f["exposure"]) + 0.5 * f["noise"]
    content = base["content_base"] + 0.55 * sem_pref - visibility
    content_pref = 0.5 * base["content_base"] + 1.0 * sem_pref - 0.8 * visibility
    tw = g["technical_weight"]
    aesthetic = (tw * (quality + dof) * 0.7 + 0.2 * composition + 0.2 * color + 0.2 * light
                 + (0.55 - 0.3 * tw) * content + 0.25 * content_pref + personal_taste(img, t))
    share = 0.6 * aesthetic + 0.5 * content_pref + 0.15
    return {"aesthetic": aesthetic, "quality": quality, "composition": composition, "color": color,
            "dof": dof, "light": light, "content": content, "contentPreference": content_pref,
            "willingToShare": share}


# Scale centre per attribute, chosen so the GIAA means sit around 3-3.3 like PARA's (most images in the
# [3, 4) aesthetic class) for the default population.
_SCALE_CENTRE = {"aesthetic": 3.6, "quality": 3.75, "composition": 3.35, "color": 3.55, "dof": 3.45,
                 "light": 3.35, "content": 3.2, "contentPreference": 3.15, "willingToShare": 3.25}


def _raw_scale(name: str, latent: np.ndarray, t: dict[str, np.ndarray]) -> np.ndarray:
    return _SCALE_CENTRE[name] + t["leniency"][None, :] + t["spread"][None, :] * latent


def _to_scale(raw: np.ndarray, step: float) -> np.ndarray:
    return np.clip(np.round(raw / step) * step, 1.0, 5.0)


def rate(img: ImageTable, t: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-rater scores (N, U) of the 9 PARA attributes (aesthetic in half points, others integers)."""
    lat = attribute_latents(img, t)
    shape = lat["aesthetic"].shape
    out = {}
    for name, _, col in PARA_ATTRIBUTES:
        step = 0.5 if name == "aesthetic" else 1.0
        out[col] = _to_scale(_raw_scale(name, lat[name], t) + rng.normal(0.0, 0.3, shape), step)
    out["_latent"] = lat["aesthetic"]
    return out


# ----------------------------------------------------------------------------------------------------------
# comments


_PHRASES = {
    ("blur", -1): ["too blurry", "out of focus", "the soft focus ruins it", "the subject is not sharp",
                   "needs sharper focus"],
    ("noise", -1): ["too much noise", "very grainy", "noisy image", "distracting grain"],
    ("jpeg", -1): ["ugly compression artifacts", "blocky jpeg artifacts", "looks heavily compressed",
                   "low quality jpeg"],
    ("over", -1): ["overexposed", "the highlights are blown out", "too bright", "washed-out highlights"],
    ("under", -1): ["too dark", "underexposed", "the shadows are crushed", "needs more light"],
    ("oversat", -1): ["oversaturated colours", "the colours are too strong", "garish colours"],
    ("oversat", 1): ["vivid colours", "nice colours", "love the vibrant colours"],
    ("desat", -1): ["washed out colours", "dull colours", "looks faded"],
    ("desat", 1): ["nice muted tones", "a subtle palette"],
    ("cast", -1): ["a strong colour cast", "the white balance is off", "weird tint"],
    ("cast", 1): ["interesting colour mood", "lovely toning", "nice colour grading"],
    ("crop", -1): ["awkward crop", "the subject is cut off", "unbalanced composition"],
    ("crop", 1): ["nice off-centre composition", "good use of the rule of thirds"],
    ("tilt", -1): ["the horizon is tilted", "crooked, needs straightening", "tilted frame"],
    ("sharp", 1): ["tack sharp", "crisp details", "nice sharpness"],
}
_CAST_WORDS = {"warm": "warm orange", "cool": "cold blue", "green": "green", "magenta": "pink magenta"}
_SCENE_PHRASES = {
    "portrait": ["great portrait", "nice expression"], "animal": ["cute animal", "lovely creature"],
    "plant": ["beautiful flower", "lovely nature detail"], "landscape": ["beautiful landscape", "great scenery"],
    "architecture": ["nice architecture", "interesting building"], "still_life": ["nice still life"],
    "object": ["interesting subject"], "indoor": ["cosy interior"], "sky": ["dramatic sky", "lovely clouds"],
}
_GENERIC = {1: ["nice shot", "well done", "I like it", "beautiful"], -1: ["not for me", "meh", "needs work",
                                                                          "boring"]}
# The commenter's overall verdict, graded by their own 1-10 vote (as most AVA comments open with one).
_VERDICTS = ((8, ["stunning shot", "outstanding work", "superb image"]), (6, _GENERIC[1]),
             (4, ["okay but not special", "average", "not bad"]), (0, ["poor shot", "weak image", "not good"]))
COMMENT_KEYWORDS = {  # words a comment uses when it mentions a factor (for tests and analysis)
    "blur": ("blurry", "focus", "not sharp"), "noise": ("noise", "noisy", "grain"),
    "jpeg": ("compress", "jpeg", "blocky"), "exposure": ("exposed", "bright", "dark", "light", "highlights"),
    "saturation": ("saturated", "colours are", "vivid", "vibrant", "dull", "faded", "muted", "palette"),
    "cast": ("cast", "white balance", "tint", "toning", "grading", "mood"),
    "crop": ("crop", "cut off", "composition", "thirds"), "tilt": ("tilt", "crooked", "straighten"),
}


def _comment(rng: np.random.Generator, f: dict[str, float], hue: str, semantic: str, sens: dict[str, float],
             score10: float, sky: bool) -> str:
    """One commenter's remark: the factors they noticed (probability grows with strength x sensitivity),
    the tone they take on taste-dependent edits, a rare spurious remark, opened by a verdict graded by their own
    vote (so a few comments say something about the score that the pixels do not: photo appeal, taste)."""
    notes: list[str] = []

    def notice(strength: float, sensitivity: float) -> bool:
        return rng.random() < 1 / (1 + math.exp(-5.0 * (strength * (0.4 + sensitivity) - 0.6)))

    def pick(key: tuple[str, int]) -> str:
        opts = _PHRASES[key]
        return opts[int(rng.integers(len(opts)))]

    for name in ("blur", "noise", "jpeg"):
        if f[name] > 0 and notice(f[name], sens[f"{name}_sens"] / 2):
            notes.append(pick((name, -1)))
    if f["exposure"] and notice(abs(f["exposure"]), sens["exposure_sens"] / 2):
        p = pick(("over", -1) if f["exposure"] > 0 else ("under", -1))
        notes.append("overexposed sky" if f["exposure"] > 0 and sky and rng.random() < 0.5 else p)
    if f["saturation"] and notice(abs(f["saturation"]), 0.5):
        likes = (f["saturation"] - sens["saturation_pref"]) * np.sign(f["saturation"]) < 0.5
        notes.append(pick(("oversat" if f["saturation"] > 0 else "desat", 1 if likes else -1)))
    if f["cast"] and notice(f["cast"], 0.5):
        tone = 1 if sens["cast_like"] > 0 else -1
        phrase = pick(("cast", tone))
        if hue in _CAST_WORDS and rng.random() < 0.5:  # a named tint only for an edited cast
            phrase = f"{'lovely' if tone > 0 else 'too'} {_CAST_WORDS[hue]} tones"
        notes.append(phrase)
    if f["crop"] and notice(f["crop"], abs(sens["crop_like"]) / 2):
        notes.append(pick(("crop", 1 if sens["crop_like"] > 0 else -1)))
    if f["tilt"] and notice(abs(f["tilt"]), sens["tilt_sens"] / 2):
        notes.append(pick(("tilt", -1)))
    if not notes and f["blur"] == 0 and f["noise"] == 0 and f["jpeg"] == 0 and rng.random() < 0.25:
        notes.append(pick(("sharp", 1)))
    if rng.random() < 0.04:  # spurious remark: comments are informative, not exact
        key = list(_PHRASES)[int(rng.integers(len(_PHRASES)))]
        notes.append(pick(key))
    tone = 1 if score10 >= 5.5 else -1
    if rng.random() < 0.5:
        opts = _SCENE_PHRASES[semantic] if tone > 0 else _GENERIC[-1]
        notes.append(opts[int(rng.integers(len(opts)))])
    verdicts = next(opts for floor, opts in _VERDICTS if score10 >= floor)
    text = ", ".join([verdicts[int(rng.integers(len(verdicts)))], *notes[:3]])
    return text[0].upper() + text[1:] + ("!" if tone > 0 and rng.random() < 0.3 else ".")


# ----------------------------------------------------------------------------------------------------------
# writing


def _fmt(x: float, digits: int = 4) -> str:
    s = f"{x:.{digits}f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _score_str(x: float) -> str:
    return f"{x:.1f}" if x != int(x) else str(int(x))


def _write_csv(path: Path, header: tuple[str, ...] | list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


_README = """# AesMamba demo benchmark (generated)

Generated by `aesmamba_demo.benchmark.generate_benchmark` (format {version}) with seed {seed}, size
`{size}`: {num_photos} bundled photographs x {variants} variants = {num_images} images ({short_side} px
squares), {num_users} simulated PARA raters, AVA vote histograms from a crowd of {crowd} virtual
voters. Same seed => identical files. The photos and their licences: `aesmamba_demo/photos/MANIFEST.json`
(package `aesmamba-demo`).

Splits are disjoint by **source photo** ({split_counts}); `splits.csv` lists image -> photo -> split.

## PARA layout (`para/`)
- `imgs/<sessionId>/<imageName>`: one session per source photo.
- `annotation/PARA-GiaaTrain.csv`, `PARA-GiaaValidation.csv`, `PARA-GiaaTest.csv`: one row per image:
  `imageName, sessionId, semantic`, `<attr>_mean`, `<attr>_std` (sample std, ddof=1) for the 9 GIAA
  columns, per-bin rater counts (`aestheticScore_1.0`..`_5.0`; `compositionScore_1`..`_5` etc.; quality
  has mean/std only, as in PARA), `numRaters`.
- `annotation/PARA-PiaaTrain.csv`, `PARA-PiaaValidation.csv`, `PARA-PiaaTest.csv`: one row per
  (user, image) rating, columns of spec 9.2. Every user rates images of all three splits (~{rate_pct}% of
  the images each), so PIAA train/validation/test are the ratings of train/validation/test photos.
- `annotation/PARA-UserInfo.csv`: `userId, age, gender, EducationalLevel, artExperience,
  photographyExperience, personality-E/A/N/O/C` (Big-Five integers {b5lo}..{b5hi}, as from a
  two-items-per-trait short inventory; readers accept PARA's {para_b5lo}..{para_b5hi}).
- The *Validation* files are extra: readers that know only Train/Test ignore them (pass them with
  `csv_path=` to the PARA builders).

## AVA layout (`ava/`)
- `images/<image_id>.jpg` (same pixels as the PARA images), `AVA.txt` (all images:
  `index image_id c1..c10 semantic_tag1 semantic_tag2 challenge_id`; tag1 = scene category id
  {tags}, tag2 = 0, challenge_id = source photo number).
- `train.txt`, `validation.txt`, `test.txt`: image ids, one per line (readers that know only
  train/test lists ignore `validation.txt`; its ids are in neither of the other two).
- `captions/{{train,validation,test}}.csv`: `index, comment, score, class`; `comment` is the Python-list
  repr of short comments that mention what a commenter noticed (noisy: misses and rare spurious remarks).

## How the simulated raters behave
Raters judge what they see: softness (mean gradient at half resolution), grain (noise on the flattest
areas), JPEG blocking, brightness, colourfulness and tint are measured on the delivered pixels
(`perceived_factors`; the `seen_*` columns of `factors.csv`), so an unedited soft or dark photo counts as
soft or dark; the crop is judged by the visual balance (how far the detail's centroid sits off-centre) and a
tilt as far as it shows on level or plumb lines (the edit times how strongly the frame's edges ran along the
axes before the tilt).
Scores are generated from these factors, a small hidden appeal per source photo and each rater's character (the
traits in PARA-UserInfo.csv, i.e. what the SMP prompt says): photographers penalise blur, noise and JPEG
artefacts far more than beginners; high openness likes saturation and colour casts, photographers dislike casts;
art experience likes off-centre framing, conscientious beginners prefer it centred; extraverts prefer brighter
and neurotic raters darker exposures; tilt bothers artists and conscientious raters; scene preferences follow
the Big-Five; agreeable raters are lenient, experts harsh. quality <- blur/noise/JPEG, color <- saturation/cast,
light <- exposure, composition <- crop/tilt (and softness/exposure), dof <- blur, content/contentPreference <-
scene preference (and softness, exposure, grain); aesthetic mixes them with weights that depend on experience.
Rating noise: N(0, 0.3) before rounding.

## Ground truth
- `factors.csv`: per image the raw edit parameters and the normalised edit strengths `f_blur, f_noise,
  f_jpeg` (0..1), `f_exposure, f_saturation, f_tilt` (-1..1), `f_cast, f_crop` (0..1); what the raters
  judged, `seen_*` on the same scales; and the hidden per-photo bases. Meant for analysis; a fair baseline
  uses pixels only (`aesmamba_demo.baseline`).
- `user_taste.csv`: the hidden per-user taste parameters derived from each character (+ idiosyncrasy).
- `benchmark_manifest.json`: parameters, counts and the sha256 of every written file.
"""


def _prepare_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not (overwrite or (out / "benchmark_manifest.json").is_file()):
            raise FileExistsError(f"{out} is not empty and holds no generated benchmark; pass overwrite=True")
        for name in ("para", "ava", "factors.csv", "splits.csv", "user_taste.csv", "README.md",
                     "benchmark_manifest.json", "_render"):
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)


def generate_benchmark(
    out_dir: str | os.PathLike,
    seed: int = 0,
    size: str = "default",
    num_users: int | None = None,
    variants_per_photo: int | None = None,
    *,
    num_photos: int | None = None,
    photos_dir: str | os.PathLike = PHOTOS_DIR,
    overwrite: bool = False,
) -> BenchmarkPaths:
    """Generate the demo benchmark under ``out_dir`` (see the module docstring and the written README).

    ``size`` picks defaults from :data:`SIZES` (``"default"``: all photos x 145 variants at 128 px, 30 users;
    ``"quick"``: 12 photos x 8 variants at 64 px, 16 users); ``num_users``, ``variants_per_photo`` and
    ``num_photos`` override them. A folder that already holds a generated benchmark is replaced; any
    other non-empty folder needs ``overwrite=True``.
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    cfg = SIZES[size]
    n_users = cfg.num_users if num_users is None else int(num_users)
    n_var = cfg.variants_per_photo if variants_per_photo is None else int(variants_per_photo)
    if n_users < 3 or n_var < 1:  # every image needs >= 3 raters
        raise ValueError(f"need num_users >= 3 and variants_per_photo >= 1, got {n_users}, {n_var}")
    start = time.perf_counter()
    out = Path(out_dir)
    _prepare_out_dir(out, overwrite)
    para, ava = out / "para", out / "ava"

    # --- photos and their split (by source photo) -----------------------------------------------------
    manifest = load_photo_manifest(photos_dir)
    for e in manifest:
        if e["semantic"] not in SEMANTIC_TAGS:
            raise ValueError(f"{photos_dir}/MANIFEST.json: {e['file']} has unknown semantic {e['semantic']!r}")
    n_photos = num_photos if num_photos is not None else cfg.num_photos
    order = _rng(seed, 0).permutation(len(manifest))
    if n_photos is not None:
        if not 3 <= n_photos <= len(manifest):
            raise ValueError(f"num_photos must be in [3, {len(manifest)}], got {n_photos}")
        order = order[:n_photos]
    chosen = [manifest[i] for i in sorted(order.tolist())]  # keep manifest order for readable ids
    n_test = max(1, round(0.2 * len(chosen)))
    n_val = max(1, round(0.1 * len(chosen)))
    split_perm = _rng(seed, 1).permutation(len(chosen))
    photo_split = ["train"] * len(chosen)
    for j in split_perm[:n_test]:
        photo_split[j] = "test"
    for j in split_perm[n_test:n_test + n_val]:
        photo_split[j] = "validation"

    # --- hidden per-photo bases -----------------------------------------------------------------------
    bases = []
    for e in chosen:
        r = _rng(seed, 2, _photo_key(e["file"]))
        # Small next to the seen factors: what raters react to is mostly visible in the pixels.
        bases.append({"content_base": r.normal(0.15, 0.15), "dof_base": r.normal(0.1, 0.1),
                      "light_base": r.normal(0.05, 0.1), "composition_base": r.normal(0.1, 0.1),
                      "color_base": r.normal(0.05, 0.1)})

    # --- render derived images ------------------------------------------------------------------------
    records = []
    render = out / "_render"
    render.mkdir()
    image_id = 0
    for p_idx, e in enumerate(chosen):
        photo_path = Path(photos_dir) / e["file"]
        if "sha256" in e and _sha256(photo_path) != e["sha256"]:
            raise ValueError(f"{photo_path}: sha256 differs from {photos_dir}/MANIFEST.json (modified photo?)")
        with Image.open(photo_path) as im:
            photo = im.convert("RGB")
        key = _photo_key(e["file"])
        edit_rng = _rng(seed, 3, key)
        stem = Path(e["file"]).stem
        session = f"session{p_idx + 1:02d}"
        for v in range(n_var):
            edits = sample_edits(edit_rng, clean=(v == 0))
            img = apply_edits(photo, edits, cfg.short_side, _rng(seed, 4, key, v), square=cfg.square)
            image_id += 1
            name = f"{stem}_v{v:02d}.jpg"
            tmp = render / f"{image_id}.jpg"
            img.save(tmp, "JPEG", quality=FINAL_JPEG_QUALITY)
            with Image.open(tmp) as delivered:  # raters judge the pixels as delivered
                seen = seen_factors(delivered, edits)
            records.append({"imageName": name, "sessionId": session, "image_id": str(image_id),
                            "source_photo": e["file"], "photo_index": p_idx + 1, "semantic": e["semantic"],
                            "split": photo_split[p_idx], "variant": v, "edits": edits, "seen": seen,
                            "size": img.size, **bases[p_idx]})
    for r in records:
        _link_or_copy(render / f"{r['image_id']}.jpg", para / "imgs" / r["sessionId"] / r["imageName"])
        _link_or_copy(render / f"{r['image_id']}.jpg", ava / "images" / f"{r['image_id']}.jpg")
    shutil.rmtree(render)

    n_img = len(records)
    table = ImageTable(
        f={k: np.array([r["seen"][k] for r in records]) for k in FACTOR_NAMES},
        semantic=[r["semantic"] for r in records],
        **{k: np.array([r[k] for r in records]) for k in ("content_base", "dof_base", "light_base",
                                                           "composition_base", "color_base")},
    )

    # --- PARA raters ----------------------------------------------------------------------------------
    users = sample_users(_rng(seed, 5), n_users)
    taste = user_taste(users, _rng(seed, 6))
    scores = rate(table, taste, _rng(seed, 7))
    rated = _rng(seed, 8).random((n_img, n_users)) < cfg.rating_probability
    for i in np.flatnonzero(rated.sum(1) < 3):  # every image gets at least 3 raters
        rated[i, _rng(seed, 9, i).choice(n_users, 3, replace=False)] = True
    emo_rng, diff_rng = _rng(seed, 10), _rng(seed, 11)
    emotions = _emotions(table, scores["_latent"], emo_rng)
    diff = _difficulty(scores["_latent"], taste, diff_rng)

    ann = para / "annotation"
    giaa_header = ["imageName", "sessionId", "semantic"]
    for col in PIAA_SCORE_COLUMNS:
        giaa_header += [f"{col}_mean", f"{col}_std"]
        giaa_header += [f"{col}_{b}" for b in GIAA_HIST_BINS.get(col, ())]
    giaa_header += ["numRaters"]
    giaa_rows: dict[str, list] = {s: [] for s in SPLITS}
    piaa_rows: dict[str, list] = {s: [] for s in SPLITS}
    for i, r in enumerate(records):
        idx = np.flatnonzero(rated[i])
        row = [r["imageName"], r["sessionId"], r["semantic"]]
        for col in PIAA_SCORE_COLUMNS:
            vals = scores[col][i, idx]
            row += [_fmt(vals.mean()), _fmt(vals.std(ddof=1) if len(vals) > 1 else 0.0)]
            for b in GIAA_HIST_BINS.get(col, ()):
                row.append(int(np.sum(np.isclose(vals, float(b)))))
        row.append(len(idx))
        giaa_rows[r["split"]].append(row)
        for u in idx:
            piaa_rows[r["split"]].append(
                [users[u]["userId"], r["imageName"], r["sessionId"]]
                + [_score_str(scores[col][i, u]) for col in PIAA_SCORE_COLUMNS]
                + [emotions[i, u], int(diff[i, u]), r["semantic"]])
    for s in SPLITS:
        suffix = s.capitalize()
        _write_csv(ann / f"PARA-Giaa{suffix}.csv", giaa_header, giaa_rows[s])
        _write_csv(ann / f"PARA-Piaa{suffix}.csv", PIAA_COLUMNS,
                   sorted(piaa_rows[s], key=lambda row: (row[0], row[2], row[1])))
    _write_csv(ann / "PARA-UserInfo.csv", USER_INFO_COLUMNS, [[u[c] for c in USER_INFO_COLUMNS] for u in users])

    # --- AVA crowd votes and captions -----------------------------------------------------------------
    crowd = sample_users(_rng(seed, 12), cfg.crowd_pool, prefix="crowd")
    crowd_taste = user_taste(crowd, _rng(seed, 13))
    crowd_latent = attribute_latents(table, crowd_taste)["aesthetic"]
    vote_rng = _rng(seed, 14)
    # The 1-5 aesthetic scale stretched to AVA's 1-10 (centred near AVA's mean of about 5.4).
    raw10 = (1.0 + 2.25 * (_raw_scale("aesthetic", crowd_latent, crowd_taste) - 1.0) - 0.2
             + vote_rng.normal(0.0, 0.9, crowd_latent.shape))
    votes10 = np.clip(np.round(raw10), 1, 10).astype(int)
    comment_rng = _rng(seed, 15)
    ava_lines, captions = [], {s: [] for s in SPLITS}
    lo_v, hi_v = cfg.votes_per_image
    lo_c, hi_c = cfg.comments_per_image
    for i, r in enumerate(records):
        voters = vote_rng.choice(cfg.crowd_pool, int(vote_rng.integers(lo_v, hi_v + 1)), replace=False)
        counts = np.bincount(votes10[i, voters], minlength=11)[1:]
        r["votes"] = counts
        ava_lines.append(" ".join(str(x) for x in [i + 1, r["image_id"], *counts.tolist(),
                                                   SEMANTIC_TAGS[r["semantic"]], 0, r["photo_index"]]))
        fac = r["seen"]
        comments = []
        for c in voters[: int(comment_rng.integers(lo_c, hi_c + 1))]:
            sens = {k: float(v[c]) for k, v in crowd_taste.items()}
            comments.append(_comment(comment_rng, fac, r["edits"].cast_hue, r["semantic"], sens,
                                     float(votes10[i, c]), r["semantic"] in ("landscape", "sky")))
        mean10 = float(np.dot(counts, np.arange(1, 11)) / counts.sum())
        cls = int(min(max(math.floor(mean10) - 1, 0), 6))  # AVA's class rule, clip(floor(mean) - 1, 0, 6)
        captions[r["split"]].append([r["image_id"], repr(comments), _fmt(mean10), cls])
    (ava / "captions").mkdir(parents=True, exist_ok=True)
    (ava / "AVA.txt").write_text("\n".join(ava_lines) + "\n", encoding="utf-8")
    for s in SPLITS:
        ids = [r["image_id"] for r in records if r["split"] == s]
        (ava / f"{s}.txt").write_text("\n".join(ids) + "\n", encoding="utf-8")
        _write_csv(ava / "captions" / f"{s}.csv", ["index", "comment", "score", "class"], captions[s])

    # --- ground truth, splits, README, manifest -------------------------------------------------------
    edit_fields = list(asdict(Edits()))
    base_fields = ["content_base", "dof_base", "light_base", "composition_base", "color_base"]
    factor_rows = []
    for r in records:
        fac = r["edits"].factors()
        ed = asdict(r["edits"])
        factor_rows.append(
            [r["imageName"], r["sessionId"], r["image_id"], r["source_photo"], r["semantic"], r["split"],
             r["variant"], r["size"][0], r["size"][1]]
            + [ed[k] if isinstance(ed[k], str) else _fmt(float(ed[k])) for k in edit_fields]
            + [_fmt(fac[k]) for k in FACTOR_NAMES] + [_fmt(r["seen"][k]) for k in FACTOR_NAMES]
            + [_fmt(r[k]) for k in base_fields])
    _write_csv(out / "factors.csv",
               ["imageName", "sessionId", "image_id", "source_photo", "semantic", "split", "variant", "width",
                "height", *edit_fields, *[f"f_{k}" for k in FACTOR_NAMES], *[f"seen_{k}" for k in FACTOR_NAMES],
                *[f"photo_{k}" for k in base_fields]],
               factor_rows)
    _write_csv(out / "splits.csv", ["imageName", "sessionId", "image_id", "source_photo", "split"],
               [[r["imageName"], r["sessionId"], r["image_id"], r["source_photo"], r["split"]] for r in records])
    _write_csv(out / "user_taste.csv", ["userId", *TASTE_NAMES],
               [[u["userId"], *[_fmt(float(taste[k][j])) for k in TASTE_NAMES]] for j, u in enumerate(users)])
    split_counts = {s: sum(1 for x in photo_split if x == s) for s in SPLITS}
    (out / "README.md").write_text(_README.format(
        version=BENCHMARK_FORMAT_VERSION, seed=seed, size=size, num_photos=len(chosen), variants=n_var,
        num_images=n_img, short_side=cfg.short_side, num_users=n_users, crowd=cfg.crowd_pool,
        split_counts=", ".join(f"{s}: {n} photos" for s, n in split_counts.items()),
        rate_pct=round(100 * cfg.rating_probability),
        b5lo=SIMULATED_BIG_FIVE_RANGE[0], b5hi=SIMULATED_BIG_FIVE_RANGE[1],
        para_b5lo=BIG_FIVE_RANGE[0], para_b5hi=BIG_FIVE_RANGE[1],
        tags=", ".join(f"{k}={v}" for k, v in SEMANTIC_TAGS.items())), encoding="utf-8")

    files = sorted(p for p in out.rglob("*") if p.is_file())
    inodes = {(st.st_dev, st.st_ino): st.st_size for st in (p.stat() for p in files)}
    num_bytes = sum(inodes.values())  # PARA and AVA images are hard links to one file where possible
    stats = {
        "num_photos": len(chosen), "num_images": n_img, "num_users": n_users,
        "num_ratings": int(rated.sum()), "photos_per_split": split_counts,
        "images_per_split": {s: sum(1 for r in records if r["split"] == s) for s in SPLITS},
        "bytes_on_disk": num_bytes,
        "seconds": round(time.perf_counter() - start, 2),
    }
    manifest_out = {
        "format_version": BENCHMARK_FORMAT_VERSION, "seed": seed, "size": size, "config": asdict(cfg),
        "num_users": n_users, "variants_per_photo": n_var, "photos": [e["file"] for e in chosen],
        "photo_split": dict(zip([e["file"] for e in chosen], photo_split)),
        "counts": {k: v for k, v in stats.items() if k not in ("seconds", "bytes_on_disk")},
        "files": {str(p.relative_to(out)): _sha256(p) for p in files},
    }
    manifest_path = out / "benchmark_manifest.json"
    manifest_path.write_text(json.dumps(manifest_out, indent=1) + "\n", encoding="utf-8")
    stats["seconds"] = round(time.perf_counter() - start, 2)
    return BenchmarkPaths(root=out, para_root=para, ava_root=ava, manifest=manifest_path,
                          factors=out / "factors.csv", splits=out / "splits.csv",
                          user_taste=out / "user_taste.csv", readme=out / "README.md", stats=stats)


def _photo_key(file: str) -> int:
    # Stable per-photo stream key (independent of which other photos are chosen).
    return int.from_bytes(hashlib.sha256(file.encode()).digest()[:4], "little")


def _emotions(img: ImageTable, latent: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    f = img.f
    n, u = latent.shape
    bright = f["exposure"][:, None] + 0.3 * f["saturation"][:, None]
    choice = np.full((n, u), "neutral", dtype=object)
    r = rng.random((n, u))
    good, bad = latent > 0.35, latent < -0.6
    scenic = np.array([s in ("landscape", "sky", "architecture") for s in img.semantic])[:, None]
    choice[good & scenic] = "awe"
    choice[good & ~scenic & (bright > 0.2)] = "excitement"
    choice[good & ~scenic & (bright <= 0.2)] = "contentment"
    choice[good & (r < 0.15)] = "amusement"
    choice[bad & (bright < -0.3)] = "sadness"
    choice[bad & (bright >= -0.3)] = "disgust"
    choice[bad & (r < 0.08)] = "fear"
    choice[r > 0.93] = "neutral"
    return choice


def _difficulty(latent: np.ndarray, t: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """-1 easy, 0 normal, 1 hard: clear-cut images are easy, middling ones hard, experts find it easier."""
    d = 0.6 - np.abs(latent) - 0.3 * t["technical_weight"][None, :] + rng.normal(0, 0.25, latent.shape)
    return np.where(d > 0.45, 1, np.where(d < -0.1, -1, 0))


def expected_scores(root: str | os.PathLike) -> dict:
    """Noise-free expected scores of a generated benchmark: the raters' (and the AVA crowd's) true taste model
    applied to what they judge (``seen_*`` in ``factors.csv``: what the pixels show, the tilt where level lines
    show it) and the scene category, with the hidden per-photo appeal set to zero. This is what a perfect model of the
    pixels that cannot know a new photo's hidden appeal would predict, so its correlation with the ratings of
    held-out photos is a ceiling for pixels-only models (used by the demo report).

    Returns ``{"image_ids", "image_names", "splits", "ava" (N,), "giaa" {attr: (N,)}, "user_ids",
    "piaa" {attr: (N, U)}, "piaa_personal" (N, U), "personal_factors" (N, F), "personal_weights" (U, F),
    "personal_prior_std" (U,)}`` in
    ``factors.csv`` order; ``giaa`` averages over all the benchmark's raters; ``piaa_personal`` is each rater's
    own taste (in scale points), ``personal_factors @ personal_weights.T``.
    """
    root = Path(root)
    manifest = json.loads((root / "benchmark_manifest.json").read_text(encoding="utf-8"))
    seed, n_users, crowd_pool = manifest["seed"], manifest["num_users"], manifest["config"]["crowd_pool"]
    with open(root / "factors.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    n = len(rows)
    table = ImageTable(
        f={k: np.array([float(r[f"seen_{k}"]) for r in rows]) for k in FACTOR_NAMES},
        semantic=[r["semantic"] for r in rows],
        **{k: np.zeros(n) for k in ("content_base", "dof_base", "light_base", "composition_base", "color_base")},
    )
    users = sample_users(_rng(seed, 5), n_users)
    taste = user_taste(users, _rng(seed, 6))  # same streams as generate_benchmark
    crowd = sample_users(_rng(seed, 12), crowd_pool, prefix="crowd")
    crowd_taste = user_taste(crowd, _rng(seed, 13))
    latents = attribute_latents(table, taste)
    piaa = {name: _raw_scale(name, latents[name], taste) for name, _, _ in PARA_ATTRIBUTES}
    crowd_raw = _raw_scale("aesthetic", attribute_latents(table, crowd_taste)["aesthetic"], crowd_taste)
    return {
        "image_ids": [r["image_id"] for r in rows], "image_names": [r["imageName"] for r in rows],
        "sessions": [r["sessionId"] for r in rows], "splits": [r["split"] for r in rows],
        "ava": (1.0 + 2.25 * (crowd_raw - 1.0) - 0.2).mean(axis=1),
        "giaa": {name: v.mean(axis=1) for name, v in piaa.items()},
        "user_ids": [u["userId"] for u in users], "piaa": piaa,
        "piaa_personal": taste["spread"][None, :] * personal_taste(table, taste),
        # piaa_personal = personal_factors @ personal_weights.T (what a learner told the factors would fit)
        "personal_factors": personal_factors(table),
        "personal_weights": taste["spread"][:, None] * np.stack([taste[f"own_{k}"] for k in PERSONAL_FACTORS],
                                                                axis=1),
        "personal_prior_std": PERSONAL_TASTE_SCALE * taste["spread"],  # the weights' spread before they were drawn
    }


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Generate the AesMamba demo benchmark.")
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", choices=sorted(SIZES), default="default")
    parser.add_argument("--num-users", type=int, default=None)
    parser.add_argument("--variants-per-photo", type=int, default=None)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    paths = generate_benchmark(args.out_dir, seed=args.seed, size=args.size, num_users=args.num_users,
                               variants_per_photo=args.variants_per_photo, overwrite=args.overwrite)
    print(json.dumps({"root": str(paths.root), **paths.stats}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
