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
