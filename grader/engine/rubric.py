"""rubric.toml: the lab's sections and items, points, hints, dependencies, variables and paths.

Validated when loaded. Every problem is an ``InputError`` whose message names the file, the line
(where it can be found), the key, and the closest valid name, e.g.::

    rubric.toml:57: sections[3].items[1] (pop3_login).depends: 'pop3_greet' is not an item
    of this rubric (did you mean 'pop3_greets'?)

The rubric never imports a check: ``bind_checks`` verifies, once the checks have been
discovered, that each item names a check and each check has an item (both ways, as pluggy
verifies hooks), and gives each item its check's title: the first line of the check's docstring
is the one text a student reads about what is checked. (An item's ``title`` key, which older
rubrics have, is still accepted and not used; ``grade rubric`` says so.)
"""

from __future__ import annotations

import dataclasses
import graphlib
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from grader.base.closest import closest
from grader.base.errors import InputError
from grader.engine.variants import Var, derive, problems

Visibility = Literal["visible", "hidden"]


@dataclass(frozen=True)
class Item:
    id: str
    section: str  # the section's title
    title: str  # the check's docstring's first line, once bound (see bind_checks)
    points: float
    hint: str
    depends: tuple[str, ...]
    visibility: Visibility
    hints: Mapping[str, str] = dataclasses.field(default_factory=dict)  # per system (below)
    #: its check reads what only root may: graded by a user who is not root (a self-check
    #: without sudo), it is not checked, whatever its commands answered
    needs_root: bool = False

    def hint_for(self, system: Sequence[str]) -> str:
        return pick_hint(self.hint, self.hints, system)


@dataclass(frozen=True)
class Cause:
    """One reason that fails several checks (a daemon that is not running): a check failing for it
    says so (``fail(..., cause=ID)``), and the report names it once, first, with its hint."""

    id: str
    title: str
    hint: str
    hints: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def hint_for(self, system: Sequence[str]) -> str:
        return pick_hint(self.hint, self.hints, system)


def pick_hint(hint: str, hints: Mapping[str, str], system: Sequence[str]) -> str:
    """The hint for a VM that says it is ``system`` (os-release's ID, then its ID_LIKE words:
    ["ubuntu", "debian"]): the first of them the rubric has a hint for, else ``hint``, written
    for the system the lab's handout uses."""
    return next((hints[name] for name in system if name in hints), hint)


@dataclass(frozen=True)
class Unique:
    """Something no two students' VMs share (a machine-id): the class run flags those who do."""

    id: str
    what: str
    command: str
    why: str = ""  # why a classmate cannot plant it on another's VM


@dataclass(frozen=True)
class Rubric:
    path: Path
    title: str
    sha256: str
    checks_dir: Path
    paths: Mapping[str, str | list[str]]
    vars: Mapping[str, Var]
    ports: tuple[int, ...]
    items: tuple[Item, ...]  # in dependency order: every item after the items it depends on
    unique: tuple[Unique, ...] = ()
    hidden_items: int = 0  # items a student copy left out (counted in the student view)
    hidden_ids: tuple[str, ...] = ()  # their ids (checks without an item here, on purpose)
    notes: tuple[str, ...] = ()  # said by `grade rubric`: keys that are accepted, not used
    #: said by `grade rubric`: what a student would read badly (a check with no docstring)
    warnings: tuple[str, ...] = ()
    causes: Mapping[str, Cause] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], folder: Path) -> Rubric:
        """A rubric compiled to JSON values (grader.selfcheck.bundle), rebuilt in ``folder`` without
        reading TOML or validating again: it was validated when it was compiled."""
        return cls(
            path=folder / str(data["path"]),
            title=data["title"],
            sha256=data["sha256"],
            checks_dir=folder / str(data["checks_dir"]),
            paths=dict(data["paths"]),
            vars={
                name: Var(**{**spec, "range": tuple(spec["range"]) if spec["range"] else None})
                for name, spec in data["vars"].items()
            },
            ports=tuple(data["ports"]),
            items=tuple(Item(**{**i, "depends": tuple(i["depends"])}) for i in data["items"]),
            unique=tuple(Unique(**u) for u in data["unique"]),
            hidden_items=data["hidden_items"],
            hidden_ids=tuple(data["hidden_ids"]),
            notes=tuple(data["notes"]),
            warnings=tuple(data.get("warnings", ())),
            causes={name: Cause(**spec) for name, spec in data.get("causes", {}).items()},
        )

    @property
    def max_score(self) -> float:
        return sum(item.points for item in self.items)

    @property
    def sections(self) -> list[str]:
        """Section titles in the order the rubric gives them."""
        return list(dict.fromkeys(item.section for item in self.items))

    def item(self, item_id: str) -> Item:
        return next(i for i in self.items if i.id == item_id)

    def cause_of(self, cause: str | None) -> Cause | None:
        """A cause a check named: one of the rubric's [causes], or another item (its title and
        hint are the cause's). A cause the rubric does not know is no cause."""
        if cause is None:
            return None
        if cause in self.causes:
            return self.causes[cause]
        found = [i for i in self.items if i.id == cause]
        return Cause(found[0].id, found[0].title, found[0].hint, found[0].hints) if found else None

    def secret_vars(self) -> set[str]:
        return {name for name, spec in self.vars.items() if spec.secret}

    def resolve_vars(self, given: Mapping[str, str], student: str | None = None) -> dict[str, str]:
        """Rubric defaults overlaid with the variables given on the command line or roster;
        with ``student``, the derived variables not given are that student's variant."""
        unknown = sorted(set(given) - set(self.vars))
        if unknown:
            raise InputError(
                f"{self.path}: unknown variable {unknown[0]!r}"
                f"{closest(unknown[0], self.vars)}; the rubric's [vars] declares "
                f"{', '.join(sorted(self.vars)) or 'none'}"
            )
        values = {name: given.get(name, spec.default) for name, spec in self.vars.items()}
        for name, spec in self.vars.items():
            if spec.derive is not None and name not in given:
                found = derive(spec, student, values) if student else None
                values[name] = found or ""
        return values

    def variant(self, values: Mapping[str, str]) -> dict[str, str]:
        """The derived variables' values (a student's variant, shown in their report)."""
        return {
            name: values.get(name, "")
            for name, spec in self.vars.items()
            if spec.derive is not None and not spec.secret
        }


def load_rubric(path: Path, text: str | None = None) -> Rubric:
    """Read and check a rubric; ``text``, when given, is checked as if it were that file."""
    try:
        raw = path.read_bytes() if text is None else text.encode()
    except OSError as e:
        raise InputError(f"{path}: cannot read the rubric: {e.strerror}") from None
    # lazy: self-check (a compiled rubric needs no parsing: a lab VM's Python 3.9 has no tomllib,
    # its bundle no pydantic)
    import tomllib

    from pydantic import ValidationError

    from grader.engine.rubric_schema import RubricModel, VarModel, describe_validation_error

    text = raw.decode("utf-8", errors="replace")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{path}: not valid TOML: {e}") from None
    where = KeyLocator(path, text)
    try:
        model = RubricModel.model_validate(data)
    except ValidationError as e:
        raise InputError(describe_validation_error(where, data, e)) from None

    items: dict[str, Item] = {}
    notes = []
    for si, section in enumerate(model.sections):
        for ii, it in enumerate(section.items):
            if it.id in items:
                raise InputError(
                    where(("sections", si, "items", ii, "id"))
                    + f"item id {it.id!r} is used twice; ids must be unique"
                )
            if it.title is not None:
                notes.append(
                    where(("sections", si, "items", ii, "title"))
                    + f"{it.id}: the title is not used; a student reads the first line of the "
                    "check's docstring"
                )
            items[it.id] = Item(
                id=it.id,
                section=section.title,
                title=it.title or it.id,
                points=it.points,
                hint=it.hint,
                depends=tuple(it.depends),
                visibility=it.visibility,
                hints=dict(it.hints),
                needs_root=it.needs_root,
            )
    for si, section in enumerate(model.sections):
        for ii, it in enumerate(section.items):
            for dep in it.depends:
                if dep not in items:
                    raise InputError(
                        where(("sections", si, "items", ii, "depends"))
                        + f"item {it.id!r} depends on {dep!r}, which is not an item of this "
                        f"rubric{closest(dep, items)}"
                    )
    order = _dependency_order(path, items)
    variables = {
        name: (
            Var(
                spec.default,
                spec.secret,
                spec.help,
                spec.derive,
                spec.key,
                (spec.range[0], spec.range[1]) if spec.range else None,
            )
            if isinstance(spec, VarModel)
            else Var(default=spec)
        )
        for name, spec in model.vars.items()
    }
    for name, var in variables.items():
        for problem in problems(name, var, list(variables)):
            raise InputError(where(("vars", name)) + f"vars.{name}.{problem}")
    seen_unique: set[str] = set()
    for n, unique in enumerate(model.unique):
        if unique.id in seen_unique:
            raise InputError(where(("unique", n, "id")) + f"unique id {unique.id!r} is used twice")
        seen_unique.add(unique.id)
    for name in model.causes:
        if name in items:
            raise InputError(
                where(("causes", name))
                + f"causes.{name}: an item has this id too; a cause needs an id of its own"
            )
    checks_dir = (path.parent / model.checks).resolve()
    if not checks_dir.is_dir():
        raise InputError(where(("checks",)) + f"checks folder {checks_dir} does not exist")
    return Rubric(
        path=path,
        title=model.title,
        sha256=hashlib.sha256(raw).hexdigest(),
        checks_dir=checks_dir,
        paths=dict(model.paths),
        vars=variables,
        ports=tuple(model.outside.ports),
        unique=tuple(Unique(u.id, u.what, u.command, u.why) for u in model.unique),
        items=tuple(items[i] for i in order),
        hidden_items=(
            model.hidden_items if isinstance(model.hidden_items, int) else len(model.hidden_items)
        ),
        hidden_ids=() if isinstance(model.hidden_items, int) else tuple(model.hidden_items),
        notes=tuple(notes),
        causes={
            name: Cause(name, cause.title, cause.hint, dict(cause.hints))
            for name, cause in model.causes.items()
        },
    )


def bind_checks(rubric: Rubric, checks: Mapping[str, Any]) -> Rubric:
    """The rubric with each item bound to its check (``checks``: id ->
    grader.engine.checkload.Check): an item that names no check, and a check that no item marks,
    are refused, naming the files. Each item takes its check's title (the docstring's first
    line)."""
    where = KeyLocator(rubric.path, rubric.path.read_text(errors="replace"))
    for item in rubric.items:
        if item.id not in checks:
            line = where.line_of_value("id", item.id)
            prefix = f"{rubric.path}:{line}: " if line else f"{rubric.path}: "
            raise InputError(
                f"{prefix}item {item.id!r} names no check in {rubric.checks_dir}"
                f"{closest(item.id, checks)}"
            )
    marked = {item.id for item in rubric.items} | set(rubric.hidden_ids)
    unmarked = [check for check_id, check in checks.items() if check_id not in marked]
    if unmarked and len(unmarked) > (0 if rubric.hidden_ids else rubric.hidden_items):
        check = unmarked[0]
        raise InputError(
            f"{check.source}: check {check.id!r} has no item in {rubric.path}, so it would never "
            f"be run{closest(check.id, [i.id for i in rubric.items])}; give it an item (id = "
            f'"{check.id}") or remove the check'
        )
    items = tuple(dataclasses.replace(i, title=checks[i.id].title) for i in rubric.items)
    warnings = tuple(
        f"{checks[i.id].source}: check {i.id!r} has no docstring, so a student reads its id "
        f"alone ({i.id!r}); its first line is the one text a student reads of what it checks"
        for i in rubric.items
        if not checks[i.id].doc.strip()
    )
    return dataclasses.replace(rubric, items=items, warnings=warnings)


def _dependency_order(path: Path, items: Mapping[str, Item]) -> list[str]:
    sorter = graphlib.TopologicalSorter({i.id: i.depends for i in items.values()})
    try:
        ready = list(sorter.static_order())
    except graphlib.CycleError as e:
        cycle = " -> ".join(e.args[1])
        raise InputError(f"{path}: dependency cycle among items: {cycle}") from None
    # static_order is a valid order but not the rubric's; keep the rubric's order where the
    # dependencies allow it, so reports list items as the lab does.
    position = {item_id: n for n, item_id in enumerate(items)}
    done: list[str] = []
    pending = sorted(ready, key=position.__getitem__)
    while pending:
        nxt = next(i for i in pending if all(d in done for d in items[i].depends))
        done.append(nxt)
        pending.remove(nxt)
    return done


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*([A-Za-z0-9_-]+|"[^"]*")\s*=\s*(.*)$""")


class KeyLocator:
    """Finds the line of a key path such as ('sections', 2, 'items', 0, 'points').

    TOML parsers do not keep positions, so this reads the table headers and ``key =`` lines
    again. It is a best effort: when a key cannot be placed, the message names no line.
    """

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines: dict[tuple[object, ...], int] = {}
        self.values: list[tuple[str, str, int]] = []
        table: tuple[object, ...] = ()
        counters: dict[tuple[object, ...], int] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            header = _HEADER.match(line)
            if header:
                parts = tuple(p.strip().strip('"') for p in header.group(2).split("."))
                if header.group(1) == "[[":
                    # an array of tables: [[sections.items]] is the next item of the latest section
                    parent = _latest(counters, parts[:-1])
                    key = (*parent, parts[-1])
                    counters[key] = counters.get(key, -1) + 1
                    table = (*key, counters[key])
                else:
                    table = parts
                self.lines.setdefault(table, number)
                continue
            match = _KEY.match(line)
            if match:
                name = match.group(1).strip('"')
                self.lines.setdefault((*table, name), number)
                self.values.append((name, match.group(2).strip(), number))

    def __call__(self, loc: Sequence[object]) -> str:
        for end in range(len(loc), 0, -1):
            line = self.lines.get(tuple(loc[:end]))
            if line:
                return f"{self.path}:{line}: "
        return f"{self.path}: "

    def line_of_value(self, key: str, value: str) -> int | None:
        quoted = {f'"{value}"', f"'{value}'"}
        return next(
            (n for k, v, n in self.values if k == key and v.split("#")[0].strip() in quoted), None
        )


def _latest(
    counters: Mapping[tuple[object, ...], int], parents: tuple[str, ...]
) -> tuple[object, ...]:
    """The current element path of the array-of-tables named by ``parents`` (e.g. sections)."""
    path: tuple[object, ...] = ()
    for name in parents:
        path = (*path, name)
        if path in counters:
            path = (*path, counters[path])
    return path
