"""The lab author's guide: every public name a pack may use has a docstring (its reference is
made of them), and the site builds with warnings as errors (``mkdocs build --strict``)."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
#: What a pack may use: the toolkit, the simulator's API, the ``lab`` and ``outside`` fixtures
PACK_API = ("grader.toolkit", "grader.sim", "grader.engine.lab", "grader.probes")


def _undocumented() -> list[str]:
    griffe = pytest.importorskip("griffe")  # the docs' own tool (mkdocstrings-python's)
    from grader.probes import BUILT_IN

    root = griffe.GriffeLoader(search_paths=[str(PROJECT)]).load("grader")
    found = []

    def look(obj, where: str) -> None:
        if obj.docstring is None or not obj.docstring.value.strip():
            found.append(where)

    def members(path: str, names: list[str]) -> None:
        module = root[path.removeprefix("grader.")]
        for name in names:
            member = module[name]
            target = member.final_target if member.is_alias else member
            look(target, f"{path}.{name}")
            if target.is_class:
                for own, method in target.members.items():
                    if not own.startswith("_") and not method.is_alias and method.is_function:
                        look(method, f"{path}.{name}.{own}")

    for path in PACK_API:
        module = importlib.import_module(path)
        public = getattr(module, "__all__", None) or [
            n
            for n, m in root[path.removeprefix("grader.")].members.items()
            if not n.startswith("_") and not m.is_alias
        ]
        members(path, list(public))
    for spec in BUILT_IN.values():  # each kind of probe (how it asks: Probe's), its answer
        path, name = spec.split(":")
        kind = getattr(importlib.import_module(path), name)
        look(root[path.removeprefix("grader.")][name], f"{path}.{name}")
        members(path, [kind.Answer.__name__])
    return found


def test_every_public_name_a_pack_may_use_has_a_docstring():
    assert _undocumented() == []


def test_the_guide_builds_with_warnings_as_errors(tmp_path):
    if shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None:
        assert not os.environ.get("CI"), "CI builds the guide: mkdocs is in the test extra"
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    run = subprocess.run(
        [str(Path(sys.executable).parent / "mkdocs"), "build", "--strict", "--site-dir",
         str(tmp_path / "site")],
        cwd=PROJECT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    reference = (tmp_path / "site" / "reference" / "toolkit" / "index.html").read_text()
    assert "processes" in reference and "The prover mutates" in reference
    tutorial = (tmp_path / "site" / "tutorial" / "index.html").read_text()
    assert "grade new-lab" in tutorial
