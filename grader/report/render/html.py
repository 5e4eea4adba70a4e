"""A student's report as a self-contained HTML page: no network fetch, printable, and every
string from the VM escaped (Jinja2 autoescape), so nothing in a mail subject ever runs."""

from __future__ import annotations

import functools
import re
import shlex

import jinja2

from grader.base.results import Report
from grader.base.words import STATUS_WORDS, ErrorKind
from grader.report.feedback import fix_first, numbered
from grader.report.render.safe import printable
from grader.report.render.text import not_checked, points

#: Each status's column label, and its word in a count (the one table: grader.base.words)
LABELS = {str(status): words.label for status, words in STATUS_WORDS.items()}
WORDS = {str(status): words.counted for status, words in STATUS_WORDS.items()}


#: The toolkit's safe read of a file (``p=PATH; if [ -L ...``), and the pattern of its lines
_READ = re.compile(r"^p=('[^']*'|\S+); if \[ -L ")
_PATTERN = re.compile(r"grep -n -a -E -e ('[^']*'|\S+)")


def asked(source: str) -> str:
    """What a check asked, as the evidence heads it: a safe read as ``read PATH`` (and the
    pattern of the lines it picked), not the shell line that reads it safely; anything else
    as it was asked. The JSON report and the evidence archive keep the whole line."""
    read = _READ.match(source)
    if read is None:
        return source
    try:
        path = shlex.split(read.group(1))[0]
        pattern = _PATTERN.search(source)
        lines = f", the lines matching {shlex.split(pattern.group(1))[0]}" if pattern else ""
    except ValueError:  # not quoted as the toolkit quotes: shown as it is
        return source
    return f"read {path}{lines}"


@functools.cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("grader.report", "templates"),
        autoescape=True,
        # every value shown: control characters replaced (a page may be opened in a terminal)
        finalize=lambda value: printable(value) if isinstance(value, str) else value,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(report: Report, **_: object) -> str:
    sections: dict[str, list[object]] = {}
    for check in report.checks:
        sections.setdefault(check.section, []).append(check)
    counts = [(s, n) for s in LABELS if (n := sum(c.status == s for c in report.checks))]
    causes = fix_first(report)
    return (
        environment()
        .get_template("report.html.j2")
        .render(
            report=report,
            sections=list(sections.items()),
            counts=counts,
            causes=causes,
            grouped=numbered(causes),
            need_root=[c.id for c in report.checks if c.error_kind == ErrorKind.NEEDS_ROOT],
            labels=LABELS,
            words=WORDS,
            points=points,
            not_checked=not_checked(report),
            asked=asked,
        )
    )
