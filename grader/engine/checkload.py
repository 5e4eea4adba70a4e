"""Discover the checks of a lab: plain pytest-testinfra test functions in a folder.

Like check50, the function name is the check's id (without ``test_``) and its docstring is the
one text a student reads about it (its first line is the check's title). A check asks for what
it needs by parameter name, as pytest fixtures do; the grader provides ``host`` (testinfra),
``lab`` (paths and variables) and ``outside`` (probes from the grading machine). The folder's
``probes.py``, when there is one, defines the pack's own kinds of outside probe.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import inspect
import sys
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from grader.base.errors import InputError
from grader.probes import Probe


@dataclass(frozen=True)
class Check:
    id: str
    function: Callable[..., object]
    params: tuple[str, ...]
    doc: str
    source: str  # "file:line", for messages about the check itself

    @property
    def title(self) -> str:
        """The docstring's first line: what the check verifies, as a student reads it."""
        first = self.doc.strip().splitlines()[0].strip() if self.doc.strip() else self.id
        return first.removesuffix(".")


def load_checks(directory: Path, fixtures: Collection[str]) -> dict[str, Check]:
    """Import every ``test_*.py`` in ``directory`` and return its ``test_*`` functions by id."""
    package = _import_package(directory)
    checks: dict[str, Check] = {}
    for path in sorted(directory.glob("test_*.py")):
        module_name = f"{package}.{path.stem}"
        module = _import(module_name, path)
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if not name.startswith("test_") or function.__module__ != module_name:
                continue
            check_id = name.removeprefix("test_")
            line = inspect.getsourcelines(function)[1]
            source = f"{path}:{line}"
            if check_id in checks:
                raise InputError(
                    f"{source}: check {check_id!r} is also defined at {checks[check_id].source}"
                )
            params = tuple(inspect.signature(function).parameters)
            unknown = [p for p in params if p not in fixtures]
            if unknown:
                raise InputError(
                    f"{source}: check {check_id!r} asks for {unknown[0]!r}, which the grader "
                    f"does not provide (it provides {', '.join(sorted(fixtures))})"
                )
            checks[check_id] = Check(
                id=check_id,
                function=function,
                params=params,
                doc=inspect.getdoc(function) or "",
                source=source,
            )
    if not checks:
        raise InputError(f"{directory}: no checks found (test_*.py files with test_* functions)")
    return checks


def load_probes(directory: Path) -> list[tuple[str, type]]:
    """The probe kinds the folder's ``probes.py`` defines: (file:line, class) pairs."""

    path = directory / "probes.py"
    if not path.exists():
        return []
    package = _import_package(directory)
    module = _import(f"{package}.probes", path)
    found = []
    for _, kind in inspect.getmembers(module, inspect.isclass):
        if issubclass(kind, Probe) and kind is not Probe and kind.__module__ == f"{package}.probes":
            found.append((f"{path}:{inspect.getsourcelines(kind)[1]}", kind))
    return found


def _import_package(directory: Path) -> str:
    """Import the folder as a package of its own, so its modules' relative imports work."""
    name = "_grader_checks_" + hashlib.sha1(str(directory).encode()).hexdigest()[:12]
    if name not in sys.modules:
        init = directory / "__init__.py"
        if init.exists():
            spec = importlib.util.spec_from_file_location(
                name, init, submodule_search_locations=[str(directory)]
            )
        else:  # a folder of test files alone is a package too
            spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
            spec.submodule_search_locations = [str(directory)]
        if spec is None:
            raise InputError(f"{directory}: cannot import the checks folder")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        if spec.loader is not None:
            _run_import(lambda: spec.loader.exec_module(module), init)  # type: ignore[union-attr]
    return name


def _import(name: str, path: Path) -> object:
    """Load a check module from its file, past any import hook: under pytest, its assertion
    rewriting would otherwise add its own explanation to a check's message."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InputError(f"{path}: cannot import this check module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        _run_import(lambda: spec.loader.exec_module(module), path)  # type: ignore[union-attr]
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _run_import(action: Callable[[], object], path: Path) -> object:
    try:
        return action()
    except SyntaxError as e:
        raise InputError(f"{e.filename or path}:{e.lineno}: syntax error: {e.msg}") from None
    except Exception as e:  # an import-time crash in a check module is the rubric author's input
        raise InputError(f"{path}: importing the checks failed: {type(e).__name__}: {e}") from None
