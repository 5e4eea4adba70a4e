"""course.toml: a course's labs, their due times and policies, its roster and extensions.

    title = "Computer Systems 2026"
    roster = "class.csv"

    [[labs]]
    id = "lab6"
    lab = "lab6"                 # a pack name, or: rubric = "path/to/rubric.toml"
    due = 2026-12-01T23:59:00+00:00
    policy = "last_before_due"   # or "best", "last"
    late = { per_day = 0.10, max = 0.50, grace_minutes = 15 }
    retry_minutes = 30           # course due's gradings again of an incomplete student count
                                 # on time within this window after the due time (and grace)

    vars = { db_password = { env = "LAB6_DB_PW" } }   # or a value: user = "alice"

    [extensions]
    s2400137 = { lab6 = 2026-12-03T23:59:00+00:00 }

    # optional: db = "postgresql://grader@db.example/course" (password: ~/.pgpass or a service)
    # private = true: the book and runs/ are readable by their owner only (the default)
    # staff = ["anna", "ben"]: who may sign in to the web as staff (grade serve link --staff)
    # and per lab: feedback = "immediate" | "after_due" | "on_release" (what a student sees on
    # the web), requests = { every = "10m", per_day = 12, count = true } ("Grade my VM now")
    # [[lti]]: an LMS the course is an LTI 1.3 tool of (issuer, client_id, deployment_ids,
    # auth_login_url, auth_token_url, key_set_url, match): see grader.course.lti

The course commands find it by walking up from the current folder (as git finds .git), or take
``--course PATH``. It is validated when loaded, like the rubric: the file, the line, the key and
the closest valid name. Due times carry their offset: a time without one is refused (a
deadline must mean one instant wherever the grader runs). An extension names a student of the
roster and a lab of the course, and is no earlier than the lab's due time. Every text, keys
too, is one line of printable text (no control character: they reach terminals, pages and job
scripts).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from grader.base.closest import closest
from grader.base.errors import InputError
from grader.classrun.roster import CONTROL, roster_ids
from grader.course.book import has_password
from grader.course.marks import Late
from grader.course.schema import (
    CourseModel,
    FromEnvModel,
    LabModel,
    LateModel,
    LtiModel,
    RequestsModel,
)
from grader.engine.rubric import KeyLocator

FILE = "course.toml"
BOOK = "gradebook.sqlite"


@dataclass(frozen=True)
class FromEnv:
    """A variable given by the name of the environment variable that holds it."""

    env: str


@dataclass(frozen=True)
class Requests:
    """How often a student may ask for a grading of their VM (the web's "Grade my VM now")."""

    every: timedelta = timedelta(minutes=10)  # at most one every so long
    per_day: int = 12  # and so many in a day (the last 24 hours)
    count: bool = True  # False: practice, kept in the book, counted in no mark


@dataclass(frozen=True)
class CourseLab:
    id: str
    lab: str | None  # a pack name
    rubric: Path | None  # or a rubric file
    due: datetime
    policy: str
    late: Late
    vars: Mapping[str, str | FromEnv] = field(default_factory=dict)
    where: str = ""  # "course.toml:12: ", for messages about this lab's entry
    image: tuple[str, ...] = ()  # values the handed-out image gives every VM
    feedback: str = "immediate"  # immediate | after_due | on_release: what a student sees
    requests: Requests = field(default_factory=lambda: Requests())

    def given(self) -> dict[str, str]:
        """The lab's variables for every student, secrets read from the environment now."""
        found = {}
        for name, value in self.vars.items():
            if isinstance(value, FromEnv):
                if value.env not in os.environ:
                    raise InputError(
                        f"{self.where}labs ({self.id}).vars.{name}: the environment variable "
                        f"{value.env} is not set"
                    )
                found[name] = os.environ[value.env]
            else:
                found[name] = value
        return found


@dataclass(frozen=True)
class LtiPlatform:
    """An LMS the course is registered with as an LTI 1.3 tool (a ``[[lti]]`` table)."""

    issuer: str
    client_id: str
    deployment_ids: tuple[str, ...]
    auth_login_url: str
    auth_token_url: str
    key_set_url: str
    match: str = "email"  # email | sis_id | username | a claim's path (CLAIM or CLAIM#KEY)
    where: str = ""  # "course.toml:30: "
    auth_audience: str | None = None  # the token request's audience (default auth_token_url)


#: What ``match`` names besides a claim's path
LTI_MATCHES = ("email", "sis_id", "username")
#: The OpenID Connect claims a ``match`` may name bare (others are an LTI claim's URL)
OIDC_CLAIMS = ("preferred_username", "nickname", "given_name", "family_name", "name")


@dataclass(frozen=True)
class Course:
    path: Path  # course.toml
    title: str
    roster: Path
    labs: Mapping[str, CourseLab]
    extensions: Mapping[str, Mapping[str, datetime]]  # student -> lab -> due
    db: str | None = None  # the gradebook's URL, when the course names it
    private: bool = True  # the book and runs/ for their owner only
    staff: tuple[str, ...] = ()  # who may sign in to the web as staff
    lti: tuple[LtiPlatform, ...] = ()  # the LMSs the course is an LTI 1.3 tool of

    @property
    def folder(self) -> Path:
        return self.path.parent

    def lab(self, lab_id: str) -> CourseLab:
        if lab_id not in self.labs:
            raise InputError(
                f"{self.path}: no lab {lab_id!r} in this course{closest(lab_id, self.labs)} "
                f"(its labs: {', '.join(self.labs)})"
            )
        return self.labs[lab_id]

    def due_for(self, student: str, lab_id: str) -> datetime:
        """The student's due time for a lab: their extension, else the lab's."""
        return self.extensions.get(student, {}).get(lab_id, self.labs[lab_id].due)


def find_course(given: Path | None = None, start: Path | None = None) -> Path:
    """``given`` (a course.toml or its folder), else GRADER_COURSE, else the nearest
    course.toml in the current folder or one above it."""
    if given is None and os.environ.get("GRADER_COURSE"):
        given = Path(os.environ["GRADER_COURSE"])
    if given is not None:
        path = given / FILE if given.is_dir() else given
        if not path.is_file():
            raise InputError(f"{path}: no such course file")
        return path
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / FILE).is_file():
            return folder / FILE
    raise InputError(
        f"no {FILE} in {here} or any folder above it: run this in a course folder, or give "
        "--course PATH"
    )


def load_course(path: Path) -> Course:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read the course file: {e}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{path}: not valid TOML: {e}") from None
    # lines as TOML counts them: a line separator it lets stand in a string is no line break
    where = KeyLocator(path, text.translate(_NOT_LINE_BREAKS))
    _refuse_control_characters(data, where)
    try:
        model = CourseModel.model_validate(data)
    except ValidationError as e:
        first = min(e.errors(), key=lambda x: (x["type"] != "extra_forbidden", -len(x["loc"])))
        # pydantic names the member of a union it tried ("str", "FromEnvModel"): not a key
        loc = tuple(p for p in first["loc"] if p not in ("str", "FromEnvModel"))
        key = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc).replace(
            ".[", "["
        )
        message = first["msg"]
        if first["type"] == "extra_forbidden":
            model_of: Any = CourseModel
            if "late" in loc:
                model_of = LateModel
            elif "requests" in loc:
                model_of = RequestsModel
            elif "vars" in loc:
                model_of = FromEnvModel
            elif loc[0] == "lti":
                model_of = LtiModel
            elif len(loc) == 3:
                model_of = LabModel
            message = f"unknown key{closest(str(loc[-1]), list(model_of.model_fields))}"
        elif first["type"] == "missing":
            message = "this key is required"
        raise InputError(f"{where(loc)}{key or '(top level)'}: {message}") from None
    roster = path.parent / model.roster
    labs: dict[str, CourseLab] = {}
    for n, lab in enumerate(model.labs):
        at = where(("labs", n))
        if lab.id in labs:
            raise InputError(f"{at}labs[{n}].id: lab {lab.id!r} is listed twice")
        if (lab.lab is None) == (lab.rubric is None):
            raise InputError(f"{at}labs[{n}] ({lab.id}): give either lab (a pack name) or rubric")
        _aware(where(("labs", n, "due")), f"labs[{n}].due", lab.due)
        labs[lab.id] = CourseLab(
            lab.id,
            lab.lab,
            (path.parent / lab.rubric) if lab.rubric else None,
            lab.due,
            lab.policy,
            Late(lab.late.per_day, lab.late.max, lab.late.grace_minutes, lab.retry_minutes),
            {
                name: FromEnv(value.env) if isinstance(value, FromEnvModel) else value
                for name, value in lab.vars.items()
            },
            at,
            tuple(lab.image),
            lab.feedback,
            Requests(_duration(lab.requests.every), lab.requests.per_day, lab.requests.count),
        )
    if model.extensions:
        students = roster_ids(roster)
    for student, dues in model.extensions.items():
        for lab_id, due in dues.items():
            at = where(("extensions", student, lab_id))
            if student not in students:
                raise InputError(
                    f"{at}extensions.{student}: {student!r} is not a student of the roster "
                    f"{roster}{closest(student, students)}; an extension for a misspelt id "
                    "would be lost for the real student"
                )
            if lab_id not in labs:
                raise InputError(
                    f"{at}extensions.{student}.{lab_id}: no lab {lab_id!r} in this course"
                    f"{closest(lab_id, labs)}"
                )
            _aware(at, f"extensions.{student}.{lab_id}", due)
            if due < labs[lab_id].due:
                raise InputError(
                    f"{at}extensions.{student}.{lab_id}: {due.isoformat()} is earlier than the "
                    f"lab's due time {labs[lab_id].due.isoformat()}: an extension gives more "
                    "time, never less"
                )
    if model.db is not None and not model.db.startswith(("sqlite:///", "postgresql://")):
        raise InputError(
            f"{where(('db',))}db: {model.db.split(':', 1)[0]!r} is not a database the gradebook "
            "uses: give sqlite:///PATH or postgresql://USER@HOST/NAME"
        )
    if model.db is not None and has_password(model.db):
        raise InputError(
            f"{where(('db',))}db: the URL holds a password; keep it out of course.toml "
            "(~/.pgpass, PGPASSFILE, or a service file: PGSERVICE)"
        )
    return Course(
        path=path,
        title=model.title,
        roster=roster,
        labs=labs,
        extensions={s: dict(d) for s, d in model.extensions.items()},
        db=model.db,
        private=model.private,
        staff=tuple(model.staff),
        lti=_lti(model.lti, where),
    )


def _lti(models: list[LtiModel], where: KeyLocator) -> tuple[LtiPlatform, ...]:
    """The ``[[lti]]`` tables: one registration per issuer and client id; a key set, a token
    and a login address over https (http only to this machine, for tests); ``match`` a known
    name or a claim's path."""
    found: list[LtiPlatform] = []
    for n, m in enumerate(models):
        at = where(("lti", n))
        if any(p.issuer == m.issuer and p.client_id == m.client_id for p in found):
            raise InputError(f"{at}lti[{n}]: {m.issuer} with client_id {m.client_id!r} is "
                             "registered twice")  # fmt: skip
        for key in ("issuer", "auth_login_url", "auth_token_url", "key_set_url"):
            url = getattr(m, key)
            host = url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
            if url.startswith("http://") and host not in ("127.0.0.1", "localhost", "::1"):
                raise InputError(
                    f"{where(('lti', n, key))}lti[{n}].{key}: {url} is not https: an LMS's "
                    "keys and tokens travel over TLS only (http is for this machine, in tests)"
                )
        claim = m.match.split("#")[0]
        if m.match not in LTI_MATCHES and (
            not all(m.match.split("#")) or any(c.isspace() for c in m.match)
            or not (claim.startswith(("https://", "http://")) or claim in OIDC_CLAIMS)
        ):  # fmt: skip
            raise InputError(
                f"{where(('lti', n, 'match'))}lti[{n}].match: {m.match!r} is neither one of "
                f"{', '.join(LTI_MATCHES)}{closest(m.match, (*LTI_MATCHES, *OIDC_CLAIMS))} nor "
                "a claim's path (an LTI claim's URL, or an OpenID Connect claim's name, then "
                "#KEY for a key of an object claim)"
            )
        urls = (m.auth_login_url, m.auth_token_url, m.key_set_url)
        found.append(LtiPlatform(m.issuer, m.client_id, tuple(m.deployment_ids), *urls, m.match,
                                 at, m.auth_audience))  # fmt: skip
    return tuple(found)


#: What str.splitlines() breaks lines at but TOML does not, as TOML's escapes
_NOT_LINE_BREAKS = {c: f"\\u{c:04x}" for c in (0x0B, 0x0C, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029)}
#: What a name (an id, a pack, a variable) may be: the name a refusal suggests must be one
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def _refuse_control_characters(data: dict[str, Any], where: KeyLocator) -> None:
    """Every text of course.toml, keys too, is one line of printable text: a title, an id, a
    name or a path reaches terminals, pages, file names and the Slurm script, where a line break
    or an escape sequence would act (a title's second line ran as a command of the script)."""
    for loc, text, is_key in _texts(data):
        found = CONTROL.search(text)
        if found is None:
            continue
        cleaned = CONTROL.sub("", text)
        named = is_key or (loc[0] == "labs" and loc[-1] in ("id", "lab", "env"))
        student = is_key and len(loc) == 2 and loc[0] == "extensions"
        suggested = named and bool(_NAME.fullmatch(cleaned) or (student and cleaned.strip()))
        key = ".".join(
            f"[{p}]" if isinstance(p, int) else repr(p) if CONTROL.search(p) else p for p in loc
        ).replace(".[", "[")
        raise InputError(
            f"{_line_of(where, loc)}{key}: holds a control character (U+{ord(found.group()):04X}"
            "), which a terminal, a page or a job script would act on; write it as one line of "
            "printable text" + (f" (did you mean {cleaned!r}?)" if suggested else "")
        )


def _texts(
    value: object, loc: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], str, bool]]:
    """Each text of a parsed TOML document: where it is, the text, and whether it is a key."""
    if isinstance(value, str):
        yield loc, value, False
    elif isinstance(value, dict):
        for key, item in value.items():
            yield (*loc, key), key, True
            yield from _texts(item, (*loc, key))
    elif isinstance(value, list):
        for n, item in enumerate(value):
            yield from _texts(item, (*loc, n))


def _line_of(where: KeyLocator, loc: tuple[str | int, ...]) -> str:
    """``where(loc)``, and the line of a quoted key that holds an escape (``"s1\\n" = ...``),
    which the locator keeps as written."""
    for known, line in where.lines.items():
        if len(known) == len(loc) and all(
            k == p or (isinstance(k, str) and isinstance(p, str) and _decoded(k) == p)
            for k, p in zip(known, loc, strict=True)
        ):
            return f"{where.path}:{line}: "
    return where(loc)


def _decoded(written: str) -> str | None:
    """A quoted TOML key as written between its quotes, its escapes decoded."""
    try:
        return str(tomllib.loads(f'k = "{written}"')["k"])
    except tomllib.TOMLDecodeError:
        return None


def _duration(text: str) -> timedelta:
    """ "10m" -> 10 minutes (the schema allows a number and s, m or h)."""
    unit = {"s": "seconds", "m": "minutes", "h": "hours"}[text[-1]]
    return timedelta(**{unit: int(text[:-1])})


def _aware(at: str, key: str, when: datetime) -> None:
    if when.tzinfo is None:
        raise InputError(
            f"{at}{key}: {when.isoformat()} has no UTC offset; write it with one "
            f"(e.g. {when.isoformat()}+00:00), so it means one instant wherever it is read"
        )
