"""The marks' query over the book: each student's gradings of a lab as they count (regrades in
place of what they regraded, dropped runs left out), the mark the course's policy gives (with
the overrides and acceptances in force) and everything ``book explain`` shows of it, a
student's history, what each grading showed of the machine that answered, and the runs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from grader.base.words import Status
from grader.course.book.schema import (
    accepts,
    checks,
    drops,
    identities,
    overrides,
    parse_utc,
    reports,
    rubrics,
    runs,
    utc,
)
from grader.course.book.store import Store
from grader.course.marks import (
    PRACTICE,
    Accepted,
    CheckOverride,
    ItemSpec,
    Late,
    Mark,
    Recorded,
    Settled,
    mark_of,
)
from grader.engine.identity import Sighting


@dataclass(frozen=True)
class Row:
    """One student's mark for one lab, as ``book show`` gives it (its JSON is a contract)."""

    student: str
    lab: str
    mark: float | None
    max: float | None
    score: float | None
    penalty: float
    days_late: int
    policy: str
    run_at: str | None
    overridden: bool
    reason: str
    run: int | None = None  # the book's run whose grading counts
    incomplete: list[str] = field(default_factory=list)  # checks still not checked
    filled: list[dict[str, Any]] = field(default_factory=list)  # from a later grading
    rubric_sha256: str | None = None  # the rubric the counting grading was scored with
    rubric_current: bool = True  # False: an older rubric than the lab's (grade course regrade)
    notes: list[str] = field(default_factory=list)  # e.g. an override made on older points
    flags: list[dict[str, Any]] = field(default_factory=list)  # identity: questions for staff
    # gradings that count here which an import took without a replay, on staff's word (run,
    # by, at, reason, why)
    trusted: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Explained:
    """Everything ``book explain`` shows of one mark."""

    row: Row
    decided: Mark
    due: datetime
    overrides: list[dict[str, Any]]
    gradings: list[Recorded]


class Book(Store):
    """A course's gradebook (see grader.course.book.store.Store for how one is opened), and the
    marks' query over it."""

    def rubric_items(self, lab: str) -> dict[str, tuple[ItemSpec, ...]]:
        """Each rubric the book knows for a lab: sha256 -> its items."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(rubrics.c.sha256, rubrics.c.spec).where(rubrics.c.lab == lab)
            ).all()
        return {
            row.sha256: tuple(
                ItemSpec(i["id"], float(i["points"]), tuple(i["depends"]))
                for i in json.loads(row.spec)
            )
            for row in rows
        }

    def run_of(self, folder: Path) -> tuple[int, str] | None:
        """The recorded run (id, lab) of a folder, if it is one."""
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(runs.c.id, runs.c.lab).where(runs.c.folder == self.relative(folder))
            ).first()
        return (int(row.id), str(row.lab)) if row else None

    def run(self, run_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(runs).where(runs.c.id == run_id)).first()
        return dict(row._mapping) if row else None

    def runs_of(self, lab: str) -> list[dict[str, Any]]:
        """Every run of a lab that is not a regrade, in recording order."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(runs).where(runs.c.lab == lab, runs.c.kind != "regrade")
                .order_by(runs.c.id)
            ).all()  # fmt: skip
        return [dict(r._mapping) for r in rows]

    def latest_version(self, run_id: int) -> dict[str, Any]:
        """A run as its latest regrade (not dropped) has it: that run's row."""
        with self.engine.connect() as connection:
            dropped = self._dropped(connection)
            rows = connection.execute(
                sa.select(runs).where(sa.or_(runs.c.id == run_id, runs.c.regrade_of == run_id))
                .order_by(runs.c.id)
            ).all()  # fmt: skip
        kept = [r for r in rows if r.id not in dropped] or rows[:1]
        return dict(kept[-1]._mapping)

    def graded_students(
        self, lab: str, kinds: Sequence[str], graded_only: bool = False
    ) -> set[str]:
        """The students a run of these kinds recorded for a lab (only those it could grade,
        with ``graded_only``)."""
        query = (
            sa.select(reports.c.student)
            .join(runs, runs.c.id == reports.c.run_id)
            .where(runs.c.lab == lab, runs.c.kind.in_(list(kinds)))
        )
        if graded_only:
            query = query.where(reports.c.status == "graded")
        with self.engine.connect() as connection:
            return {r.student for r in connection.execute(query)}

    # -- what a mark is decided from ---------------------------------------------------------

    def gradings(self, student: str, lab: str) -> list[Recorded]:
        """Each run's grading of the student, as its latest regrade has it (a regrade keeps
        the time the VM was seen); dropped runs and practice (requests that do not count)
        left out."""
        items = self.rubric_items(lab)
        with self.engine.connect() as connection:
            dropped = self._dropped(connection)
            rows = connection.execute(
                sa.select(reports, runs.c.kind, runs.c.regrade_of, runs.c.id.label("run"))
                .join(runs, runs.c.id == reports.c.run_id)
                .where(reports.c.student == student, runs.c.lab == lab)
                .order_by(runs.c.id)
            ).all()
            latest: dict[int, Any] = {}
            for row in rows:
                if row.run in dropped:
                    continue
                original = row.regrade_of if row.kind == "regrade" and row.regrade_of else row.run
                if original in dropped:
                    continue
                latest[original] = row  # runs in recording order: the last regrade wins
            ids = [row.id for row in latest.values()]
            originals = {
                row.id: row
                for row in connection.execute(
                    sa.select(runs.c.id, runs.c.batch, runs.c.kind).where(
                        runs.c.id.in_(list(latest))
                    )
                )
            }
            latest = {k: v for k, v in latest.items() if originals[k].kind != PRACTICE}
            found: dict[int, list[Settled]] = {}
            if ids:
                for c in connection.execute(sa.select(checks).where(checks.c.report_id.in_(ids))):
                    found.setdefault(c.report_id, []).append(
                        Settled(
                            c.check_id,
                            c.status,
                            c.points,
                            c.max_points,
                            c.error_kind,
                            c.cause,
                            c.message or "",
                        )
                    )
        gradings = []
        for original, row in latest.items():
            sha = row.rubric_sha256
            spec = items.get(sha) if sha else None
            outcomes = found.get(row.id, [])
            if spec is not None:
                order = {i.id: n for n, i in enumerate(spec)}
                outcomes.sort(key=lambda o: order.get(o.id, len(order)))
            grading = Recorded(
                original, parse_utc(row.graded_at), row.status, row.max_score,
                tuple(outcomes), spec, sha, row.run, row.report_path, originals[original].batch,
                originals[original].kind,
                parse_utc(row.asked_at) if row.asked_at else None,
            )  # fmt: skip
            gradings.append(grading)
        return gradings

    def last_graded(self, lab: str) -> dict[str, datetime]:
        """Each student's latest grading of a lab that graded their VM (dropped runs left
        out): when the VM was seen."""
        with self.engine.connect() as connection:
            dropped = self._dropped(connection)
            rows = connection.execute(
                sa.select(reports.c.student, reports.c.graded_at, runs.c.id, runs.c.regrade_of)
                .join(runs, runs.c.id == reports.c.run_id)
                .where(runs.c.lab == lab, reports.c.status == "graded")
            ).all()
        found: dict[str, datetime] = {}
        for row in rows:
            if row.id in dropped or (row.regrade_of is not None and row.regrade_of in dropped):
                continue
            at = parse_utc(row.graded_at)
            if row.student not in found or at > found[row.student]:
                found[row.student] = at
        return found

    def sightings(self, lab: str) -> list[Sighting]:
        """What every grading of a lab (dropped runs left out) showed of the machine that
        answered, each with where it was seen; and each grading's own answered_elsewhere."""
        with self.engine.connect() as connection:
            dropped = self._dropped(connection)
            rows = connection.execute(
                sa.select(identities.c.kind, identities.c.value, reports.c.id,
                          reports.c.student, reports.c.graded_at, runs.c.id.label("run"),
                          runs.c.regrade_of, runs.c.kind.label("run_kind"))
                .join(reports, reports.c.id == identities.c.report_id)
                .join(runs, runs.c.id == reports.c.run_id)
                .where(runs.c.lab == lab)
            ).all()  # fmt: skip
        found: dict[int, tuple[str, str, dict[str, list[str]]]] = {}
        for row in rows:
            original = row.regrade_of if row.run_kind == "regrade" and row.regrade_of else row.run
            if row.run in dropped or original in dropped:
                continue
            where = f"run {original}, the VM as seen {row.graded_at}"
            entry = found.setdefault(row.id, (row.student, where, {}))
            entry[2].setdefault(row.kind, []).append(row.value)
        return [Sighting(student, values, where) for student, where, values in found.values()]

    def students(self, lab: str) -> set[str]:
        """Every student the book has a report of for a lab."""
        with self.engine.connect() as connection:
            return {
                r.student
                for r in connection.execute(
                    sa.select(reports.c.student)
                    .join(runs, runs.c.id == reports.c.run_id)
                    .where(runs.c.lab == lab)
                )
            }

    # -- marks -------------------------------------------------------------------------------

    def mark(
        self, student: str, lab: str, due: datetime, late: Late, policy: str,
        current_sha: str | None = None,
    ) -> Row:  # fmt: skip
        """The student's mark for a lab, as of the recorded gradings, the policy and the
        overrides in force."""
        return self.explain(student, lab, due, late, policy, current_sha).row

    def explain(
        self, student: str, lab: str, due: datetime, late: Late, policy: str,
        current_sha: str | None = None,
    ) -> Explained:  # fmt: skip
        with self.engine.connect() as connection:
            active = self._active(connection, student, lab)
            accepted = {
                c: Accepted(c, row.made_by, row.reason)
                for c, row in self._accepted(connection, student, lab).items()
            }
        gradings = self.gradings(student, lab)
        by_check = {
            c: CheckOverride(c, float(row.value), row.made_by, row.reason, row.max_points)
            for c, row in active.items()
            if c is not None
        }
        decided = mark_of(gradings, due, late, policy, by_check, accepted)
        final, reason = decided.mark, decided.reason
        incomplete = list(decided.incomplete)
        if None in active:  # the lab's final mark, set by hand
            final = float(active[None].value)
            reason = f"set by {active[None].made_by}: {active[None].reason}"
            incomplete = []
        elif by_check:
            reason += "; " + "; ".join(
                f"{o.check} set to {o.value:g} by {o.by}: {o.reason}" for o in by_check.values()
            )
        sha = decided.grading.rubric_sha256 if decided.grading else None
        versions = {g.version for g in gradings}  # the reports the marks are made from
        row = Row(
            student=student,
            lab=lab,
            mark=final,
            max=decided.max_score,
            score=decided.score,
            penalty=decided.penalty,
            days_late=decided.days_late,
            policy=policy,
            run_at=utc(decided.run_at) if decided.run_at else None,
            overridden=bool(active),
            reason=reason,
            run=decided.run,
            incomplete=incomplete,
            filled=[
                {
                    "check": f.check,
                    "run": f.run,
                    "at": utc(f.at),
                    "status": f.status,
                    "days_late": f.days_late,
                    "penalty": f.penalty,
                    "taken": f.taken,
                    "accepted_by": f.accepted.by if f.accepted else None,
                    "accepted_reason": f.accepted.reason if f.accepted else None,
                }
                for f in decided.filled
            ],
            rubric_sha256=sha,
            rubric_current=current_sha is None or sha is None or sha == current_sha,
            notes=list(decided.notes),
            trusted=[t for t in self.trusted_gradings(student, lab) if t["run"] in versions],
        )
        made = [
            {"check": c, "value": float(r.value), "by": r.made_by, "at": r.made_at,
             "reason": r.reason, "before": r.before}
            for c, r in active.items()
        ]  # fmt: skip
        return Explained(row, decided, due, made, gradings)

    def check_points(
        self, student: str, lab: str, check_id: str, run: int | None = None
    ) -> float | None:
        """The check's points in a run's grading of the student (the latest, by default)."""
        query = (
            sa.select(checks.c.points)
            .join(reports, reports.c.id == checks.c.report_id)
            .join(runs, runs.c.id == reports.c.run_id)
            .where(reports.c.student == student, runs.c.lab == lab, checks.c.check_id == check_id)
        )
        if run is not None:
            query = query.where(runs.c.id == run)
        with self.engine.connect() as connection:
            return connection.execute(query.order_by(runs.c.id.desc())).scalar()

    # -- history -----------------------------------------------------------------------------

    def history(self, student: str, lab: str | None = None) -> list[dict[str, Any]]:
        """Every run, regrade, drop and override of a student, in time order, and when each
        check first passed."""
        events: list[dict[str, Any]] = []
        with self.engine.connect() as connection:
            query = (
                sa.select(reports, runs.c.kind, runs.c.lab, runs.c.recorded_at,
                          runs.c.recorded_by, runs.c.regrade_of, runs.c.folder,
                          runs.c.id.label("run"), runs.c.batch)
                .join(runs, runs.c.id == reports.c.run_id)
                .where(reports.c.student == student)
            )  # fmt: skip
            if lab:
                query = query.where(runs.c.lab == lab)
            mine = set()
            for row in connection.execute(query.order_by(runs.c.id)):
                mine.add(row.run)
                events.append({
                    "kind": row.kind, "lab": row.lab, "at": row.recorded_at,
                    "by": row.recorded_by, "graded_at": row.graded_at, "status": row.status,
                    "score": row.score, "max": row.max_score, "folder": row.folder,
                    "regrade_of": row.regrade_of, "run": row.run, "batch": row.batch,
                    "error_kind": row.error_kind,
                })  # fmt: skip
            for row in connection.execute(sa.select(drops).order_by(drops.c.id)):
                if row.run_id not in mine:
                    continue
                about = {"run": row.run_id, "lab": next(e["lab"] for e in events
                                                        if e.get("run") == row.run_id)}  # fmt: skip
                events.append({"kind": "drop", "at": row.made_at, "by": row.made_by,
                               "reason": row.reason, **about})  # fmt: skip
                if row.undone_at:
                    events.append({"kind": "undrop", "at": row.undone_at, "by": row.undone_by,
                                   "reason": row.undone_reason, **about})  # fmt: skip
            query = sa.select(overrides).where(overrides.c.student == student)
            if lab:
                query = query.where(overrides.c.lab == lab)
            for row in connection.execute(query.order_by(overrides.c.id)):
                about = {"lab": row.lab, "check": row.check_id, "value": row.value,
                         "before": row.before}  # fmt: skip
                events.append({"kind": "override", "at": row.made_at, "by": row.made_by,
                               "reason": row.reason, **about})  # fmt: skip
                if row.withdrawn_at:
                    events.append({"kind": "withdraw", "at": row.withdrawn_at,
                                   "by": row.withdrawn_by, "reason": row.withdrawn_reason,
                                   **about})  # fmt: skip
            query = sa.select(accepts).where(accepts.c.student == student)
            if lab:
                query = query.where(accepts.c.lab == lab)
            for row in connection.execute(query.order_by(accepts.c.id)):
                about = {"lab": row.lab, "check": row.check_id}
                events.append({"kind": "accept", "at": row.made_at, "by": row.made_by,
                               "reason": row.reason, **about})  # fmt: skip
                if row.undone_at:
                    events.append({"kind": "unaccept", "at": row.undone_at, "by": row.undone_by,
                                   "reason": row.undone_reason, **about})  # fmt: skip
            first = (
                sa.select(runs.c.lab, checks.c.check_id, sa.func.min(reports.c.graded_at))
                .join(reports, reports.c.id == checks.c.report_id)
                .join(runs, runs.c.id == reports.c.run_id)
                .where(reports.c.student == student, checks.c.status == Status.PASS.value)
                .group_by(runs.c.lab, checks.c.check_id)
            )
            if lab:
                first = first.where(runs.c.lab == lab)
            passed = [
                {"kind": "first_passed", "lab": row[0], "check": row[1], "at": row[2], "by": None}
                for row in connection.execute(first)
            ]
        return sorted(events, key=lambda e: e["at"]) + sorted(
            passed, key=lambda e: (e["at"], e["check"])
        )
