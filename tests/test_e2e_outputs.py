"""What the grader prints stays what it printed: each sample VM's text report (what `scripts/demo`
shows of a VM), its Markdown and its JSON verdicts, compared with the files in tests/outputs/,
the moment, durations, addresses and host keys of a grading taken out. A change of wording is
made there on purpose, with `GRADER_UPDATE_OUTPUTS=1` (it writes the files anew)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from grader.base.results import Report
from grader.report.render import render
from grader.report.render.safe import escaped_all
from scenarios import SCENARIOS

pytestmark = pytest.mark.vm

OUTPUTS = Path(__file__).resolve().parent / "outputs"
#: What differs from one grading of a VM to the next, and is no wording of the grader's
VARYING = [
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"), "TIME"),
    (re.compile(r"\b\d+(\.\d+)? ?s\b"), "SECONDS"),
    (re.compile(r"198\\?\.18\.\d+\.\d+"), "ADDRESS"),  # Markdown escapes its first dot
    # what a VM answered (a process list's pids, a queue's ids) is evidence, not wording
    (re.compile(r"<details><summary>Evidence</summary>.*?</details>", re.S), "EVIDENCE"),
    (re.compile(r"SHA256:[A-Za-z0-9+/=]+"), "HOSTKEY"),
    (re.compile(r"/tmp/[^\s'\"]+"), "TMP"),
    (re.compile(r"[0-9a-f]{64}"), "SHA256"),
]


def steady(text: str) -> str:
    for pattern, word in VARYING:
        text = pattern.sub(word, text)
    return text


def same_as_kept(name: str, text: str) -> None:
    path = OUTPUTS / name
    if os.environ.get("GRADER_UPDATE_OUTPUTS") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path}: no output kept (GRADER_UPDATE_OUTPUTS=1 keeps it)"
    assert text == path.read_text(), f"{name} differs from what was kept"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_each_sample_vms_reports_read_as_they_did(grade, fleet, scenario_vms, name):
    report = json.loads(grade(*fleet.grade_args(scenario_vms[name])).stdout)
    verdicts = {c["id"]: [c["status"], c["points"], c["error_kind"], c["message"]]
                for c in report["checks"]}  # fmt: skip
    same_as_kept(f"{name}.json", steady(json.dumps(verdicts, indent=1, sort_keys=True)) + "\n")
    # the same grading as the terminal shows it (100 columns, no colour) and as Markdown
    read = Report.from_dict(report)
    text = render("text", escaped_all(read), color=False, width=100)
    same_as_kept(f"{name}.txt", steady(text))
    same_as_kept(f"{name}.md", steady(render("md", read)))
