"""The demo is its own package (``aesmamba-demo``, ``demo/``): what the library keeps of it and what it must not.

The library never imports ``aesmamba_demo`` except lazily, in the ``aesmamba demo`` subcommand and the
deprecated ``aesmamba_hf.demo`` alias; the subcommand says how to install the demo where it is missing.
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

from aesmamba_hf.cli import main

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "src" / "aesmamba_hf"
# the only library modules that may import the demo package (both lazily, see their docstrings)
DEMO_IMPORTERS = {LIBRARY / "cli" / "demo.py", LIBRARY / "demo" / "__init__.py"}


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


class _HideDemo:
    """A meta-path finder that makes ``aesmamba_demo`` look not installed."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "aesmamba_demo":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


def test_library_does_not_import_the_demo():
    offenders = [str(p.relative_to(ROOT)) for p in sorted(LIBRARY.rglob("*.py"))
                 if p not in DEMO_IMPORTERS
                 and any(m.split(".")[0] == "aesmamba_demo" for m in _imported_modules(p))]
    assert not offenders


@pytest.fixture
def aesmamba_demo():
    return pytest.importorskip("aesmamba_demo", reason="the demo package is not installed: pip install -e demo")


def test_photos_ship_with_the_demo_package_only(aesmamba_demo):
    photos = Path(aesmamba_demo.PHOTOS_DIR)
    assert photos.parent == Path(aesmamba_demo.__file__).resolve().parent
    assert (photos / "MANIFEST.json").is_file() and len(list(photos.glob("*.jpg"))) >= 50
    assert not list(LIBRARY.rglob("*.jpg"))
    assert not (LIBRARY / "demo" / "photos").exists()


def test_deprecated_alias_warns_and_is_the_demo_package(aesmamba_demo, monkeypatch):
    for name in [n for n in sys.modules if n == "aesmamba_hf.demo" or n.startswith("aesmamba_hf.demo.")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.warns(DeprecationWarning, match="import aesmamba_demo instead"):
        alias = importlib.import_module("aesmamba_hf.demo")
    # the submodules resolve to the demo's own modules
    assert importlib.import_module("aesmamba_hf.demo.run") is importlib.import_module("aesmamba_demo.run")
    assert alias.benchmark is aesmamba_demo.benchmark and alias.baseline is aesmamba_demo.baseline
    assert alias.generate_benchmark is aesmamba_demo.generate_benchmark
    assert set(alias.__all__) == set(aesmamba_demo.__all__)


def test_missing_demo_package_says_how_to_install_it(monkeypatch, capsys, tmp_path):
    # `import aesmamba_demo` fails as it does where the package is not installed
    for name in [n for n in sys.modules if n.split(".")[0] == "aesmamba_demo"
                 or n == "aesmamba_hf.demo" or n.startswith("aesmamba_hf.demo.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_HideDemo(), *sys.meta_path])

    assert main(["demo", "--quick", "--out", str(tmp_path / "out")]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    message = captured.err.strip()
    assert len(message.splitlines()) == 1 and message.startswith("aesmamba demo: ")
    assert "pip install -e demo" in message and "bash scripts/demo.sh" in message
    assert not (tmp_path / "out").exists()

    with pytest.warns(DeprecationWarning), pytest.raises(ModuleNotFoundError, match="pip install -e demo"):
        importlib.import_module("aesmamba_hf.demo")


def test_aesmamba_demo_command_takes_the_subcommand_options(aesmamba_demo):
    from aesmamba_demo import cli

    args = cli.build_parser().parse_args(["--quick", "--out", "x", "--seed", "3", "--threads", "2"])
    assert (args.quick, args.out, args.seed, args.threads, args.overwrite, args.quiet) == (True, "x", 3, 2,
                                                                                          False, False)
    help_text = cli.build_parser().format_help()
    assert help_text.startswith("usage: aesmamba-demo") and "--quick" in help_text


def test_a_killed_runs_staging_folder_is_removed_and_reported(tmp_path):
    run = pytest.importorskip("aesmamba_demo.run", reason="pip install -e demo")
    out = tmp_path / "aesmamba-demo-output"
    leftover = tmp_path / ".aesmamba-demo-output.partial-999999999"  # no such process: a killed run
    (leftover / "models").mkdir(parents=True)
    (leftover / "models" / "weights.bin").write_bytes(b"\0" * 200_000)
    lines: list[str] = []
    staging = run._prepare_out(out, overwrite=False, report=lines.append)
    assert not leftover.exists() and staging.is_dir() and staging != leftover
    assert len(lines) == 1 and str(leftover) in lines[0] and "0.2 MB" in lines[0] and "interrupted" in lines[0]
