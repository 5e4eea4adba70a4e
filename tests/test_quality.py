"""The code stays lint-clean, formatted, type-checked and layered (ruff, mypy and
import-linter, per pyproject.toml)."""

import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=PROJECT, capture_output=True, text=True, timeout=300
    )


def test_ruff_lint_and_format():
    lint = run("ruff", "check", "grader", "checks", "scenarios", "labs", "tests", "benchmarks")
    assert lint.returncode == 0, lint.stdout
    fmt = run(
        "ruff", "format", "--check", "grader", "checks", "scenarios", "labs", "tests", "benchmarks"
    )
    assert fmt.returncode == 0, fmt.stdout


def test_the_layers_hold():
    """Each of the grader's packages imports only those below it (pyproject's contracts)."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=PROJECT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]


def test_every_import_inside_a_function_says_why():
    """An import inside a function is there only for a reason written beside it (``# lazy:``,
    on it or on the comment line above its group): start-up time, the self-check's Python,
    an optional library, the pytest plugin. Anything else belongs at the top of its module."""
    import ast

    unexplained = []
    for path in sorted((PROJECT / "grader").rglob("*.py")):
        lines = path.read_text().splitlines()
        for function in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if not isinstance(node, (ast.Import, ast.ImportFrom)):
                    continue
                n = node.lineno - 1  # up through its group of imports to a "lazy:" note
                while n >= 0 and "lazy:" not in lines[n]:
                    text = lines[n].strip()
                    if text and not text.startswith(("#", "import ", "from ", "try:")):
                        break
                    n -= 1
                if n < 0 or "lazy:" not in lines[n]:
                    unexplained.append(f"{path.relative_to(PROJECT)}:{node.lineno}")
    assert not unexplained, unexplained


def test_packs_import_only_the_public_pack_api():
    """A lab pack (Lab 6's checks and scenarios, every pack under labs/, the README's example)
    imports from the grader only what grader.toolkit and grader.sim export."""
    import ast
    import importlib
    import re

    public = {m: set(importlib.import_module(m).__all__) for m in ("grader.toolkit", "grader.sim")}
    sources = [
        (str(path.relative_to(PROJECT)), path.read_text())
        for folder in ("checks", "scenarios", "labs")
        for path in sorted((PROJECT / folder).rglob("*.py"))
    ]
    readme = (PROJECT / "README.md").read_text()
    sources += [("README.md", block) for block in re.findall(r"```python\n(.*?)```", readme, re.S)]
    assert len(sources) > 20
    wrong = []
    for name, text in sources:
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                wrong += [
                    f"{name}: import {a.name}" for a in node.names if a.name.startswith("grader")
                ]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("grader"):
                allowed = public.get(node.module, set())
                wrong += [
                    f"{name}:{node.lineno}: from {node.module} import {a.name}"
                    for a in node.names
                    if a.name not in allowed
                ]
    assert not wrong, wrong


def test_every_link_inside_the_readme_leads_to_a_heading():
    """The README's contents line and cross-references land where they say (GitHub's anchors:
    the heading in lower case, punctuation dropped, spaces as hyphens)."""
    import re

    text = (PROJECT / "README.md").read_text()
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    headings = {
        re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in prose.splitlines()
        if line.startswith("#")
    }
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert len(links) > 10 and links <= headings, sorted(links - headings)
    # its reference pages under docs/ exist, and their links back land on its headings
    pages = set(re.findall(r"\]\((docs/[^)#]+)\)", text))
    assert pages and all((PROJECT / page).is_file() for page in pages), pages
    for page in sorted((PROJECT / "docs").glob("*.md")):
        back = set(re.findall(r"\]\(\.\./README\.md#([^)]+)\)", page.read_text()))
        assert back <= headings, (page.name, sorted(back - headings))
        assert f"docs/{page.name}" in pages, f"docs/{page.name} is not linked from the README"


def test_mypy():
    result = run("mypy")
    assert result.returncode == 0, result.stdout


def test_the_grader_names_no_lab():
    """Nothing under grader/ names a daemon, file or user of a lab: labs are packs."""
    import re

    lab_words = re.compile(r"sendmail|popa3d|vsftpd|inetd|spool|bob", re.IGNORECASE)
    found = [
        f"{path.relative_to(PROJECT)}:{n}: {line.strip()}"
        for path in sorted((PROJECT / "grader").rglob("*"))
        if path.is_file() and path.suffix in (".py", ".j2", ".css", ".js")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if lab_words.search(line)
    ]
    assert not found, "\n".join(found)


def test_mypy_strict_where_the_house_is_kept_strict():
    """The one scoring rule and the actions (the one door every front end goes through) are
    typed strictly."""
    result = run("mypy", "--strict", "grader/engine/scoring.py", "grader/actions")
    assert result.returncode == 0, result.stdout
