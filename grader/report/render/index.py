"""index.html: the class at a glance, for the lecturer.

Score histogram and pass rate per check (the checks most students failed first), drawn with
matplotlib as SVG and embedded as images (a chart can never run script or fetch anything); the
students not graded and why; flags; a sortable table linking to each student's page.
"""

from __future__ import annotations

import base64
import io
import statistics
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from grader.base.files import safe_name
from grader.base.results import Report
from grader.base.words import Status
from grader.engine.rubric import Rubric
from grader.report.render.html import environment
from grader.report.render.text import points

BANDS = 10


def _svg(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    return base64.b64encode(buffer.getvalue()).decode()


def histogram(scores: Sequence[float], max_score: float) -> str:
    # lazy: optional (pip install 'lab-grader[charts]'; see charts_available)
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(6, 3.2))
    axes = figure.subplots()
    step = max_score / BANDS if max_score else 1.0
    edges = [step * n for n in range(BANDS + 1)]
    axes.hist(scores, bins=edges, color="#0969da", edgecolor="white")
    axes.set_xlabel(f"score (out of {points(max_score)})")
    axes.set_ylabel("students")
    axes.set_xlim(0, max_score or 1)
    axes.set_xticks(edges[::2] if BANDS > 6 else edges)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.spines[["top", "right"]].set_visible(False)
    return _svg(figure)


def pass_rates(rates: Mapping[str, float]) -> str:
    from matplotlib.figure import Figure  # lazy: optional, as above

    ordered = sorted(rates.items(), key=lambda kv: (kv[1], kv[0]))
    figure = Figure(figsize=(6, 0.25 * len(ordered) + 0.9))
    axes = figure.subplots()
    names = [name for name, _ in ordered][::-1]  # the most failed at the top
    values = [100 * rate for _, rate in ordered][::-1]
    colors = ["#cf222e" if v < 50 else "#bf8700" if v < 80 else "#1a7f37" for v in values]
    bars = axes.barh(names, values, color=colors)
    axes.bar_label(bars, labels=[f"{v:.0f}%" for v in values], padding=2, fontsize=7)
    axes.set_xlim(0, 108)
    axes.set_xlabel("students who passed (%)")
    axes.tick_params(axis="y", labelsize=8)
    axes.spines[["top", "right"]].set_visible(False)
    return _svg(figure)


def _charts() -> bool:
    """matplotlib draws the charts when it is installed (pip install 'lab-grader[charts]');
    without it the page shows the same figures as tables."""
    try:
        import matplotlib  # noqa: F401  # lazy: optional
    except ImportError:
        return False
    return True


def _bands(scores: Sequence[float], max_score: float) -> list[tuple[float, float, int]]:
    step = max_score / BANDS if max_score else 1.0
    counts = [0] * BANDS
    for score in scores:
        counts[min(int(score / step), BANDS - 1)] += 1
    return [(n * step, (n + 1) * step, counts[n]) for n in reversed(range(BANDS))]


def pass_rates_of(
    graded: Sequence[Report], rubric: Rubric
) -> tuple[dict[str, float], dict[str, int]]:
    """Each check's pass rate among the students it could be checked for (a check not checked
    is neither a pass nor a loss), and how many it could not be checked for, where any."""
    rates, unchecked = {}, {}
    for item in rubric.items:
        results = [c for r in graded for c in r.checks if c.id == item.id]
        checked = [c for c in results if c.status == Status.PASS or c.lost]
        if checked:
            rates[item.id] = sum(c.status == Status.PASS for c in checked) / len(checked)
        if len(checked) < len(results):
            unchecked[item.id] = len(results) - len(checked)
    return rates, unchecked


def _row(report: Report) -> dict[str, Any]:
    """One line of the students' table: named by the student, or the host when there is none
    (a --host grading)."""
    graded = report.status == "graded"
    lost = [c for c in report.checks if c.lost]
    return {
        "report": report,
        "who": report.student or report.host,
        "page": f"{safe_name(report.student or report.host)}.html",
        "lost": [c.id for c in lost],
        "lost_points": sum(c.max_points for c in lost) if graded else None,
        "unchecked_points": report.unchecked_points if graded else None,
    }


def render(
    reports: Sequence[Report], rubric: Rubric, charts: bool | None = None, **_: object
) -> str:
    charts = _charts() if charts is None else charts
    graded = [r for r in reports if r.status == "graded"]
    scores = [r.score or 0.0 for r in graded]
    rates, unchecked = pass_rates_of(graded, rubric)
    return (
        environment()
        .get_template("index.html.j2")
        .render(
            rubric=rubric,
            reports=reports,
            graded=graded,
            missing=[r for r in reports if r.status != "graded"],
            flagged=[r for r in reports if r.flags],
            mean=statistics.mean(scores) if scores else 0,
            median=statistics.median(scores) if scores else 0,
            histogram=histogram(scores, rubric.max_score) if charts and graded else "",
            passrates=pass_rates(rates) if charts and rates else "",
            bands=_bands(scores, rubric.max_score),
            rates=sorted(rates.items(), key=lambda kv: (kv[1], kv[0])),
            unchecked=unchecked,
            rows=[_row(r) for r in reports],
            incomplete=[r for r in graded if r.unchecked],
            points=points,
            generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        )
    )
