"""roster.csv: who to grade, where, and with which variables.

A header row; required columns ``student`` and ``host``; optional ``port``, ``user``,
``identity`` (a private key file, relative to the roster's folder) and ``password_env`` (the
name of an environment variable holding the SSH password); every other column is a rubric
variable for that student (e.g. ``db_password``), an empty cell meaning the default. Blank
lines and a UTF-8 byte order mark are fine. Every problem is refused before anything is graded,
naming the file and the line.

A roster exported from Moodle or Canvas (with a host column added) works as it is: headers are
matched in any case (``Student,Host``), a semicolon-separated file is read as such, and the
columns that say who a student is (name, email, ID number, section, SIS ids ...) are carried
into the student's report and summary.csv. Other unknown columns are refused, unless named to
be ignored (``--ignore-column``).
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from grader.base.errors import InputError
from grader.base.files import safe_name
from grader.engine.rubric import Rubric, closest
from grader.machine.execution import Target
from grader.machine.ssh import load_identity
from grader.report.outputs import CLASS_FILES, STUDENT_SUFFIXES

REQUIRED = ("student", "host")
#: Student file stems that would overwrite a class file (a student's pages are <stem>.html ...)
RESERVED = frozenset(
    name.rsplit(".", 1)[0].lower()
    for name in CLASS_FILES
    if name.rsplit(".", 1)[-1] in STUDENT_SUFFIXES
)
CONNECTION = ("port", "user", "identity", "password_env")
#: Columns of Moodle's and Canvas's exports that say who a student is: kept, as written
PERSON = ("name", "first name", "last name", "full name", "email", "email address",
          "id number", "username", "section", "sis user id", "sis login id", "institution",
          "department", "group", "groups", "id")  # fmt: skip


@dataclass(frozen=True)
class Student:
    student: str
    target: Target
    vars: Mapping[str, str] = field(default_factory=dict)  # given in the roster, non-empty only
    line: int = 0
    person: Mapping[str, str] = field(default_factory=dict)  # PERSON columns, as headed

    @property
    def file_stem(self) -> str:
        return safe_name(self.student)


def load_roster(
    path: Path,
    rubric: Rubric,
    defaults: Target | None = None,
    keys: bool = True,
    ignore: Sequence[str] = (),
) -> list[Student]:
    """Read and check the roster. ``defaults`` (host ignored) give the port, user, identity and
    password of students whose row does not set them. ``keys``: check that each identity file
    is a usable key (not needed when nobody is logged in to, as at a regrade). ``ignore``:
    columns to leave out (any case)."""
    defaults = defaults or Target(host="")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise InputError(f"{path}: cannot read the roster: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    lines = text.splitlines()
    reader = csv.reader(lines, delimiter=_delimiter(lines))
    header: list[str] | None = None
    students: list[Student] = []
    seen: dict[str, int] = {}
    files: dict[str, tuple[str, int]] = {}
    loaded: dict[Path, object] = {}
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue  # blank line
            if header is None:
                header = _check_header(path, line, row, rubric, ignore)
                continue
            student = _student(path, line, header, row, rubric, defaults, loaded if keys else None)
            problem = id_problem(student.student)
            if problem:
                raise InputError(f"{path}:{line}: {problem}; give this student another id")
            if student.student in seen:
                raise InputError(
                    f"{path}:{line}: student {student.student!r} is already on "
                    f"line {seen[student.student]}"
                )
            stem = student.file_stem
            if stem.lower() in RESERVED:
                raise InputError(
                    f"{path}:{line}: student id {student.student!r} would name the page "
                    f"{stem}.html, which is the class overview's file name; give this "
                    "student another id"
                )
            other = files.get(stem.lower())
            if other:
                raise InputError(
                    f"{path}:{line}: student {student.student!r} and "
                    f"{other[0]!r} (line {other[1]}) would share the report file "
                    f"{stem}.json (file names that differ only in case are one file on some "
                    "systems); make the ids differ in letters or digits"
                )
            seen[student.student] = line
            files[stem.lower()] = (student.student, line)
            students.append(student)
    except csv.Error as e:
        raise InputError(f"{path}:{reader.line_num}: not valid CSV: {e}") from None
    if header is None:
        raise InputError(f"{path}: the roster is empty (it needs a header row: student,host,...)")
    if not students:
        raise InputError(f"{path}: the roster has a header but no students")
    return students


def roster_ids(path: Path) -> dict[str, int]:
    """The roster's student ids and their lines, read without the rest of the roster (for what
    only needs to know who is on it: a course's extensions, the gradebook's imports)."""
    return _column(path, "student", required=True)


def password_envs(path: Path) -> dict[str, int]:
    """The environment variables the roster's password_env column names, and their lines (for
    a job script, which passes them on to its tasks)."""
    return _column(path, "password_env", required=False)


def _column(path: Path, name: str, required: bool) -> dict[str, int]:
    """The values of one column and the line each is first on, read without the rest."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read the roster: {e}") from None
    reader = csv.reader(lines, delimiter=_delimiter(lines))
    found: dict[str, int] = {}
    column = None
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if column is None:
                header = [" ".join(c.lower().split()) for c in row]
                if name not in header:
                    if not required:
                        return found
                    raise InputError(f"{path}:{reader.line_num}: the header has no {name!r} column")
                column = header.index(name)
                continue
            if column < len(row) and row[column].strip():
                found.setdefault(row[column].strip(), reader.line_num)
    except csv.Error as e:
        raise InputError(f"{path}:{reader.line_num}: not valid CSV: {e}") from None
    return found


#: What a student id may not hold: control characters (an id reaches terminals and file names)
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def id_problem(student: str) -> str | None:
    """Why ``student`` cannot be an id, or None: a control character (an escape sequence in
    an id would reach a terminal), or a name no file can carry."""
    if CONTROL.search(student):
        return f"student id {student!r} holds a control character"
    return None


def _delimiter(lines: list[str]) -> str:
    """';' for a file whose header is separated by semicolons (a spreadsheet in a locale that
    writes decimal commas), else ','."""
    first = next((line for line in lines if line.strip()), "")
    return ";" if first.count(";") > first.count(",") else ","


def _canonical(name: str, rubric: Rubric) -> str:
    """A header cell as the roster reads it: a rubric variable as written, the other columns in
    any case ("Student", "HOST", "Email address")."""
    if name in rubric.vars:
        return name
    lower = " ".join(name.lower().split())
    return lower if lower in (*REQUIRED, *CONNECTION, *PERSON) else name


def _check_header(
    path: Path, line: int, row: list[str], rubric: Rubric, ignore: Sequence[str] = ()
) -> list[str]:
    skipped = {" ".join(n.lower().split()) for n in ignore}
    header = [
        "" if " ".join(c.lower().split()) in skipped else _canonical(c.strip(), rubric) for c in row
    ]
    header = [name or (IGNORED if row[n].strip() else "") for n, name in enumerate(header)]
    for name in REQUIRED:
        if name not in header:
            raise InputError(
                f"{path}:{line}: the header has no {name!r} column"
                f"{closest(name, header)}; it needs student and host"
            )
    for n, name in enumerate(header):
        if name == IGNORED:
            continue
        if not name:
            raise InputError(f"{path}:{line}: column {n + 1} of the header has no name")
        if header.count(name) > 1:
            raise InputError(f"{path}:{line}: column {name!r} appears twice in the header")
        known = (*REQUIRED, *CONNECTION, *PERSON)
        if name not in known and name not in rubric.vars:
            raise InputError(
                f"{path}:{line}: column {name!r} is neither a connection setting "
                f"({', '.join(CONNECTION)}), nor a column that says who a student is (name, "
                f"email, id number, section ...), nor a variable of the rubric "
                f"({', '.join(rubric.vars) or 'none'}){closest(name, [*known, *rubric.vars])}; "
                f"to leave it out: --ignore-column {name!r}"
            )
    return header


#: A header cell of a column left out (--ignore-column)
IGNORED = "\0ignored"


def _student(
    path: Path,
    line: int,
    header: list[str],
    row: list[str],
    rubric: Rubric,
    defaults: Target,
    keys: dict[Path, object] | None,
) -> Student:
    if len(row) > len(header):
        raise InputError(
            f"{path}:{line}: {len(row)} cells, but the header has {len(header)} columns"
        )
    cells = {name: (row[i].strip() if i < len(row) else "") for i, name in enumerate(header)}
    for name in REQUIRED:
        if not cells[name]:
            raise InputError(f"{path}:{line}: the {name} cell is empty")
    port = defaults.port
    if cells.get("port"):
        if not cells["port"].isdigit() or not 1 <= int(cells["port"]) <= 65535:
            raise InputError(
                f"{path}:{line}: port {cells['port']!r} is not a port number (1-65535)"
            )
        port = int(cells["port"])
    identity = defaults.identity
    if cells.get("identity"):
        identity = (path.parent / cells["identity"]).expanduser()
        if keys is not None and identity not in keys:
            try:
                keys[identity] = load_identity(identity)
            except InputError as e:
                raise InputError(f"{path}:{line}: identity: {e}") from None
    password = defaults.password
    if cells.get("password_env"):
        password = os.environ.get(cells["password_env"])
        if password is None:
            raise InputError(
                f"{path}:{line}: password_env names the environment variable "
                f"{cells['password_env']!r}, which is not set"
            )
    target = Target(
        host=cells["host"],
        port=port,
        user=cells.get("user") or defaults.user,
        sudo=defaults.sudo,
        identity=identity,
        password=password,
    )
    variables = {name: value for name, value in cells.items() if name in rubric.vars and value}
    person = {name: cells[name] for name in header if name in PERSON and cells[name]}
    return Student(cells["student"], target, variables, line, person)


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' -> (K, N), 1 <= K <= N: the Kth of N slices of a roster."""
    k, sep, n = text.partition("/")
    if not (sep and k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise InputError(f"--shard {text!r}: expected K/N with 1 <= K <= N, e.g. 2/8")
    return int(k), int(n)


def shard(students: list[Student], k: int, n: int) -> list[Student]:
    """The Kth of N slices: every Nth student of the roster, starting at the Kth. Slices of
    the same roster never overlap, together hold every student, and differ by at most one."""
    return students[k - 1 :: n]
