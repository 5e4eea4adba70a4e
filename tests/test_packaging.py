"""An installed grader (a wheel, no source checkout) finds its Lab 6 rubric and checks."""

import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def test_installed_wheel_grades_with_its_own_rubric(tmp_path):
    pip = [sys.executable, "-m", "pip", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "-w", str(tmp_path / "dist"), str(PROJECT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("lab_grader-*.whl")
    from grader import __version__

    assert wheel.name.startswith(f"lab_grader-{__version__}-")  # the one place it is written
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    licence = next(n for n in names if n.endswith("LICENSE"))
    assert "MIT License" in zipfile.ZipFile(wheel).read(licence).decode()
    site = tmp_path / "site"
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
    )
    program = (
        f"import sys; sys.path.insert(0, {str(site)!r}); from grader.cli import main; "
        "sys.exit(main(['rubric']))"
    )
    run = subprocess.run(
        [sys.executable, "-c", program],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 0, run.stderr
    unwrapped = run.stdout.replace("\n", "")
    assert f"{site}/grader/_lab/rubric.toml" in unwrapped
    assert f"checks in {site}/grader/_lab/checks" in unwrapped
    assert "Total 20 points in 20 items" in unwrapped
