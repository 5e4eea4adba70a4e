"""A student's report in Markdown, for feedback comments. Text from the VM is escaped
(HTML entities for < > &, backslashes for the marks Markdown reads where they stand) and
evidence sits in code fences longer than any run of backticks inside it, so nothing it holds
becomes markup. Only what would be markup is escaped: "Exercises 1-3" and "settings.conf" stay
as they are written."""

from __future__ import annotations

import re

from grader.base.results import Report
from grader.base.words import Status
from grader.report.feedback import fix_first, numbered
from grader.report.render.html import LABELS
from grader.report.render.safe import printable
from grader.report.render.text import looked_at, not_checked, points

_MARKS = re.compile(r"([\\`*_\[\]|~])")  # markup wherever it stands (| in a table cell)
_LINE_START = re.compile(r"^(#|[-+=]|\d+(?=[.)]))")  # a heading, a list item, an ordered list
EVIDENCE_CHARS = 1500  # of each piece of evidence, in the Markdown


def escape(text: str) -> str:
    text = printable(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MARKS.sub(r"\\\1", " ".join(text.split()))
    start = _LINE_START.match(text)
    if start is None:
        return text
    if start.group(1)[0].isdigit():  # "1. x" is an ordered list: "1\. x" is not
        return text[: start.end()] + "\\" + text[start.end() :]
    return "\\" + text


def fence(text: str) -> str:
    text = printable(text)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    marks = "`" * max(3, longest + 1)
    return f"{marks}text\n{text}\n{marks}"


def render(report: Report, **_: object) -> str:
    who = report.student or report.host
    out = [f"# {escape(report.rubric.title)}: {escape(who)}", ""]
    if report.status != "graded":
        out.append(
            f"**Not graded** ({escape(report.error_kind or '')}): {escape(report.error or '')}"
        )
        return "\n".join(out) + "\n"
    if report.variant:
        mine = ", ".join(
            f"{escape(k)} = {escape(v or '(not known)')}" for k, v in report.variant.items()
        )
        out += [f"Your variant: {mine}", ""]
    out.append(
        f"**Score {points(report.score or 0)} / {points(report.max_score)}** "
        f"(graded {report.graded_at}"
        + (f", regraded {report.regraded_at}" if report.regraded_at else "")
        + ")"
        + (f": {not_checked(report)}" if not_checked(report) else "")
    )
    if report.hidden_checks:
        out += [
            "",
            f"{report.hidden_checks} more check(s) marked by your instructor "
            "(not shown here, and not in this score).",
        ]
    causes = fix_first(report)
    if causes:
        out += ["", "## Fix this first", ""]
        for n, cause in enumerate(causes, 1):
            out.append(
                f"{n}. **{escape(cause.title)}**: {points(cause.points)} point(s) lost in "
                + ", ".join(f"`{c.id}`" for c in cause.checks)
                + (f". Hint: {escape(cause.hint)}" if cause.hint else "")
            )
    grouped = numbered(causes)
    for section in dict.fromkeys(c.section for c in report.checks):
        out += ["", f"## {escape(section)}", "", "| | Check | Points |", "|---|---|---|"]
        for c in (c for c in report.checks if c.section == section):
            out.append(
                f"| {LABELS[c.status]} | {escape(c.title)} `{c.id}` | "
                f"{points(c.points)} / {points(c.max_points)} |"
            )
    noted = [c for c in report.checks if c.status == Status.PASS and c.notes]
    if noted:
        out += ["", "## Notes"]
        out += [f"- {escape(c.title)}: {escape(n)}" for c in noted for n in c.notes]
    lost = [c for c in report.checks if c.lost]
    if lost:
        out += ["", "## Where the marks were lost"]
        for c in lost:
            out += [
                "",
                f"### {escape(c.title)} ({points(c.points)} / {points(c.max_points)})",
                "",
                escape(c.message),
            ]
            if c.id in grouped:
                out += ["", f"> See *Fix this first* {grouped[c.id]} above."]
            elif c.hint:
                out += ["", f"> Hint: {escape(c.hint)}"]
            out += [line for n in c.notes for line in ("", f"Note: {escape(n)}")]
            if c.status == Status.FAIL and (sources := looked_at(c)):
                out += [
                    "",
                    "Looked at: " + "; ".join(escape(s) for s in sources),
                ]
            if c.evidence:
                shown = "\n\n".join(
                    f"$ {e.source}\n{e.output[:EVIDENCE_CHARS]}" for e in c.evidence
                )
                out += [
                    "",
                    "<details><summary>Evidence</summary>",
                    "",
                    fence(shown),
                    "",
                    "</details>",
                ]
    return "\n".join(out) + "\n"
