"""The one rule of points (grader.engine.scoring.settle): a grading's verdicts, the rubric's
`depends` and the check overrides in; each check's outcome as it counts, and its points, out.
The runner settles a live grading with it, the book's marks a recorded one; no VM, no database.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from grader.base.results import Outcome
from grader.engine.scoring import (
    OVERRIDDEN_DEPENDENCY,
    CheckOverride,
    ItemSpec,
    NotRun,
    OnRecord,
    settle,
)

#: greets depends on listens, login on greets, mail on listens and files
ITEMS = (
    ItemSpec("listens", 1), ItemSpec("greets", 1, ("listens",)),
    ItemSpec("login", 2, ("greets",)), ItemSpec("files", 1),
    ItemSpec("mail", 1, ("listens", "files")),
)  # fmt: skip
PASS = Outcome("pass")
NEEDS = "needs the variable user (give it with --var-env user=ENVVAR, or --var user=...)"
CUT_OFF = "not checked: grading this host took longer than its time limit (--host-timeout)"


def by_id(verdicts: dict, overrides: dict | None = None) -> dict:
    given = {i.id: PASS for i in ITEMS} | verdicts
    return {s.id: s for s in settle(ITEMS, given, overrides or {})}


def test_a_check_whose_dependency_was_lost_is_lost_too_and_names_the_first_lost():
    settled = by_id({"listens": Outcome("fail", "nothing listens"),
                     "files": Outcome("error", "ls timed out", error_kind="timeout")})  # fmt: skip
    greets, login, mail = settled["greets"], settled["login"], settled["mail"]
    assert (greets.status, greets.error_kind, greets.cause) == ("skipped", "dependency", "listens")
    assert greets.message == "not checked: listens must pass first" and greets.lost
    # in turn: login's dependency was lost for a dependency
    assert (login.error_kind, login.cause, login.points) == ("dependency", "greets", 0)
    assert mail.message == "not checked: listens, files must pass first"
    assert (mail.error_kind, mail.cause) == ("dependency", "listens")
    assert [s.id for s in settle(ITEMS, {i.id: PASS for i in ITEMS})] == [i.id for i in ITEMS]


def test_a_dependency_not_checked_leaves_the_check_not_checked_not_lost():
    settled = by_id({"listens": Outcome("error", "ss timed out", error_kind="timeout")})
    greets = settled["greets"]
    assert (greets.status, greets.error_kind, greets.cause) == (
        "skipped", "dependency_not_checked", None
    )  # fmt: skip
    assert not greets.lost and not greets.checked and greets.points == 0
    assert greets.max_points == 1


def test_what_a_blocked_check_will_also_need_is_said_now():
    settled = by_id({"listens": Outcome("fail", "nothing listens"),
                     "greets": Outcome("skipped", NEEDS, error_kind="needs_variable")})  # fmt: skip
    assert settled["greets"].message == (
        "not checked: listens must pass first; it will also need the variable user (give it "
        "with --var-env user=ENVVAR, or --var user=...)"
    )
    assert settled["greets"].evidence == () and settled["greets"].error_kind == "dependency"


def test_a_check_its_time_limit_cut_off_is_not_checked_whatever_it_depends_on():
    cut = NotRun(Outcome("error", CUT_OFF, error_kind="deadline"))
    settled = by_id({"listens": Outcome("fail", "nothing listens"), "greets": cut})
    assert (settled["greets"].status, settled["greets"].message) == ("error", CUT_OFF)
    assert not settled["greets"].lost
    # what depends on it waits for it, as on anything not checked
    assert settled["login"].error_kind == "dependency_not_checked"


def test_an_override_sets_the_check_and_is_followed_through_depends():
    failed = by_id({}, {"listens": CheckOverride("listens", 0, "ta", "copied")})
    assert (failed["listens"].status, failed["listens"].message) == ("fail", "set by ta: copied")
    assert failed["greets"].error_kind == "dependency" and failed["login"].lost
    assert sum(s.points for s in failed.values()) == 1  # files only
    half = by_id({"login": Outcome("fail", "no")},
                 {"login": CheckOverride("login", 1.5, "ta", "x")})  # fmt: skip
    assert (half["login"].status, half["login"].points, half["login"].max_points) == (
        "pass", 1.5, 2
    )  # fmt: skip


#: A recorded grading: listens failed, so greets and login were skipped, their verdicts unknown
RECORDED = {
    "listens": OnRecord(Outcome("fail", "nothing listens")),
    "greets": OnRecord(Outcome("skipped", "not checked: listens must pass first",
                               error_kind="dependency", cause="listens")),
    "login": OnRecord(Outcome("skipped", "not checked: greets must pass first",
                              error_kind="dependency", cause="greets")),
    "files": OnRecord(PASS), "mail": OnRecord(Outcome("skipped", "not checked: listens must "
                                                      "pass first", error_kind="dependency",
                                                      cause="listens")),
}  # fmt: skip


def test_a_recorded_grading_scored_again_with_no_override_is_as_it_was():
    settled = settle(ITEMS, RECORDED)
    assert [(s.status, s.error_kind, s.cause) for s in settled] == [
        (o.outcome.status, o.outcome.error_kind, o.outcome.cause) for o in RECORDED.values()
    ]
    assert sum(s.points for s in settled) == 1


def test_an_override_that_passes_a_dependency_leaves_a_verdict_never_recorded_not_checked():
    passed = {s.id: s for s in settle(
        ITEMS, RECORDED, {"listens": CheckOverride("listens", 1, "ta", "seen live")}
    )}  # fmt: skip
    greets = passed["greets"]
    assert (greets.status, greets.error_kind) == ("skipped", OVERRIDDEN_DEPENDENCY)
    assert greets.message == (
        "not checked: an override passed what it depends on, and its own verdict was not "
        "recorded (override it too, or grade again)"
    )
    assert not greets.checked and not greets.lost
    # login waits on greets, which is not checked now: not checked either, its words kept
    login = passed["login"]
    assert (login.error_kind, login.message) == (
        "dependency_not_checked", "not checked: greets must pass first"
    )  # fmt: skip
    assert sum(s.points for s in passed.values()) == 2


def test_an_item_a_recorded_grading_lacks_is_an_error_not_a_lost_mark():
    lacking = {k: v for k, v in RECORDED.items() if k != "files"}
    files = next(s for s in settle(ITEMS, lacking) if s.id == "files")
    assert (files.status, files.error_kind, files.message) == (
        "error", "not_recorded", "not in the recorded grading"
    )  # fmt: skip
    assert not files.lost and files.points == 0


# -- properties over any rubric, any verdicts, any overrides ---------------------------------

OWN = [
    PASS,
    Outcome("fail", "wrong"),
    Outcome("fail", "wrong", cause="listening"),
    Outcome("error", "timed out", error_kind="timeout"),
    Outcome("error", "the check itself failed", error_kind="check_crashed"),
    Outcome("skipped", NEEDS, error_kind="needs_variable"),
    Outcome("skipped", "not on this system", error_kind="not_applicable"),
]


@st.composite
def gradings(draw: st.DrawFn, cut_off: bool = True) -> tuple[tuple[ItemSpec, ...], dict]:
    """A rubric (each item after the items it depends on) and each check's own verdict; the
    time limit may cut off the checks from one on."""
    count = draw(st.integers(1, 8))
    items = []
    for n in range(count):
        earlier = [i.id for i in items]
        depends = draw(st.lists(st.sampled_from(earlier), unique=True, max_size=3)) if n else []
        items.append(ItemSpec(f"c{n}", draw(st.sampled_from([0.5, 1.0, 2.0])), tuple(depends)))
    verdicts: dict = {i.id: draw(st.sampled_from(OWN)) for i in items}
    limit = draw(st.integers(0, count)) if cut_off else count
    for item in items[limit:]:
        verdicts[item.id] = NotRun(Outcome("error", CUT_OFF, error_kind="deadline"))
    return tuple(items), verdicts


def overrides_of(items: tuple[ItemSpec, ...]) -> st.SearchStrategy[dict]:
    return st.dictionaries(
        st.sampled_from([i.id for i in items]), st.sampled_from([0.0, 0.5, 1.0])
    ).map(lambda values: {c: CheckOverride(c, v, "ta", "seen") for c, v in values.items()})


@settings(deadline=None)
@given(st.data())
def test_a_check_passes_only_when_its_own_verdict_and_all_it_depends_on_passed(data):
    items, verdicts = data.draw(gradings())
    overrides = data.draw(overrides_of(items))
    settled = {s.id: s for s in settle(items, verdicts, overrides)}
    assert list(settled) == [i.id for i in items]
    for item in items:
        got = settled[item.id]
        assert got.max_points == item.points
        if item.id in overrides:
            value = overrides[item.id].value
            assert got.status == ("pass" if value > 0 else "fail") and got.points == value
            continue
        own = verdicts[item.id]
        ran = isinstance(own, Outcome)
        deps_passed = all(settled[d].status == "pass" for d in item.depends)
        assert (got.status == "pass") == (ran and own.status == "pass" and deps_passed)
        assert got.points == (item.points if got.status == "pass" else 0.0)
        if ran and not deps_passed:  # lost exactly when a dependency was lost
            assert got.status == "skipped"
            assert got.lost == any(settled[d].lost for d in item.depends)
            assert got.cause == next((d for d in item.depends if settled[d].lost), None)
        elif ran:
            assert got.outcome == own  # its own verdict, evidence and all


@settings(deadline=None)
@given(gradings())
def test_a_grading_the_runner_settled_scores_the_same_when_the_book_scores_it_again(grading):
    items, verdicts = grading
    live = settle(items, verdicts)
    again = settle(items, {s.id: OnRecord(s.outcome) for s in live})
    assert [s.points for s in again] == [s.points for s in live]
    if not any(isinstance(v, NotRun) for v in verdicts.values()):
        assert again == live


@settings(deadline=None)
@given(st.data())
def test_an_override_of_every_check_is_the_whole_score(data):
    items, verdicts = data.draw(gradings())
    values = data.draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=len(items),
                                max_size=len(items)))  # fmt: skip
    overrides = {i.id: CheckOverride(i.id, v, "ta", "by hand") for i, v in zip(items, values)}
    settled = settle(items, verdicts, overrides)
    assert sum(s.points for s in settled) == sum(values)
    assert all(s.message == "set by ta: by hand" for s in settled)
