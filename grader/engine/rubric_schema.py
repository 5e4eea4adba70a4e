"""rubric.toml's schema, as pydantic validates it when a rubric is loaded, and the messages its
mistakes get (the file, the key path and the closest valid name). Only loading a rubric needs
this (and pydantic): the rubric itself (grader.engine.rubric.Rubric) is plain dataclasses, which the
self-check bundle rebuilds from JSON on a lab VM's own Python.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from grader.base.closest import closest

Visibility = Literal["visible", "hidden"]
_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_SYSTEM = r"^[a-z0-9][a-z0-9._-]*$"  # as os-release's ID is written


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class VarModel(_Model):
    default: str = ""
    secret: bool = False
    help: str = ""
    derive: str | None = None  # a template, per student (see grader.engine.variants)
    key: Annotated[str, Field(pattern=_NAME)] | None = None
    range: Annotated[list[int], Field(min_length=2, max_length=2)] | None = None

    @field_validator("secret")
    @classmethod
    def _no_secret_default(cls, secret: bool, info: ValidationInfo) -> bool:
        if secret and info.data.get("default"):
            raise ValueError(
                "a secret variable cannot have a default: it would be written into every "
                "student's self-check and copy of the rubric; give it when grading (--var-env)"
            )
        return secret


class UniqueModel(_Model):
    id: Annotated[str, Field(pattern=_NAME)]
    what: Annotated[str, Field(min_length=1)]  # how a flag names it ("machine-id")
    command: Annotated[str, Field(min_length=1)]  # its output's lines are the values
    # why a classmate cannot plant this value on another student's VM (said in a flag's docs)
    why: str = ""


class CauseModel(_Model):
    title: Annotated[str, Field(min_length=1)]  # what is wrong, as a student reads it
    hint: str = ""  # how to fix it (shown once, for every check it fails)
    hints: dict[Annotated[str, Field(pattern=_SYSTEM)], str] = {}  # per system, as `hint`


class ItemModel(_Model):
    id: Annotated[str, Field(pattern=_NAME)]
    title: str | None = None  # not used: the check's docstring is what a student reads
    points: Annotated[float, Field(ge=0)]
    hint: str = ""
    # the hint on another system: keyed by an os-release ID or ID_LIKE word ("debian")
    hints: dict[Annotated[str, Field(pattern=_SYSTEM)], str] = {}
    depends: list[str] = []
    visibility: Visibility = "visible"
    # the check reads what only root may: run by a user, it is "not checked: run it with sudo"
    needs_root: bool = False


class SectionModel(_Model):
    id: Annotated[str, Field(min_length=1)]
    title: Annotated[str, Field(min_length=1)]
    items: Annotated[list[ItemModel], Field(min_length=1)]


class OutsideModel(_Model):
    ports: list[Annotated[int, Field(ge=1, le=65535)]] = []


class RubricModel(_Model):
    title: Annotated[str, Field(min_length=1)]
    checks: str = "checks"
    paths: dict[Annotated[str, Field(pattern=_NAME)], str | list[str]] = {}
    vars: dict[Annotated[str, Field(pattern=_NAME)], str | VarModel] = {}
    outside: OutsideModel = OutsideModel()
    unique: list[UniqueModel] = []
    causes: dict[Annotated[str, Field(pattern=_NAME)], CauseModel] = {}
    # set by a student copy: the ids of the items it left out (older copies: how many)
    hidden_items: list[Annotated[str, Field(pattern=_NAME)]] | Annotated[int, Field(ge=0)] = []
    sections: Annotated[list[SectionModel], Field(min_length=1)]


_UNION_TAGS = frozenset({"str", "list[str]", "VarModel", "list[constrained-str]", "int"})


def describe_validation_error(
    where: Callable[[Sequence[object]], str], data: Mapping[str, object], error: ValidationError
) -> str:
    """Every problem of a rubric pydantic refused, as a person reads it, one a line: ``where``
    gives the file and line of a key path. An unknown key (most often a misspelt one, and then
    a required key is "missing" too) comes first, then the most specific problem."""
    errors = sorted(error.errors(), key=lambda e: (e["type"] != "extra_forbidden", -len(e["loc"])))
    located = [(e, tuple(p for p in e["loc"] if p not in _UNION_TAGS)) for e in errors]
    shown: dict[str, list[str]] = {}  # key -> what is wrong with it (a union's members: each)
    for first, loc in located:
        # a member of a union that was not meant ("str" of a str | VarModel given a table)
        # when another member's problem is deeper at the same key: that one says what is wrong
        if (
            first["loc"][-1:]
            and first["loc"][-1] in _UNION_TAGS
            and any(other[: len(loc)] == loc and len(other) > len(loc) for _, other in located)
        ):
            continue
        key, message = _described(where, data, first, loc)
        said = shown.setdefault(key, [])
        if message not in said:
            said.append(message)
    return "\n".join(f"{key}: {', or '.join(said)}" for key, said in shown.items())


def _described(
    where: Callable[[Sequence[object]], str],
    data: Mapping[str, object],
    first: Any,
    loc: tuple[object, ...],
) -> tuple[str, str]:
    """(file:line: key, what is wrong)"""
    key = _format_key(loc, data)
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        allowed = _allowed_keys(loc)
        message = f"unknown key{closest(str(loc[-1]), allowed)}"
    elif first["type"] == "missing":
        message = "this key is required"
    return f"{where(loc)}{key}", message


def _allowed_keys(loc: Sequence[object]) -> list[str]:
    parents = [p for p in loc[:-1] if isinstance(p, str)]
    model: type[BaseModel] = RubricModel
    if parents[-1:] == ["sections"]:
        model = SectionModel
    elif parents[-1:] == ["items"]:
        model = ItemModel
    elif parents[-1:] == ["outside"]:
        model = OutsideModel
    elif parents[:1] == ["vars"]:
        model = VarModel
    elif parents[:1] == ["unique"]:
        model = UniqueModel
    elif parents[:1] == ["causes"]:
        model = CauseModel
    return list(model.model_fields)


def _format_key(loc: Sequence[object], data: Mapping[str, object]) -> str:
    """('sections', 2, 'items', 0, 'points') -> sections[2].items[0] (pop3_login).points"""
    out = ""
    node: object = data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("id"), str):
                out += f" ({node['id']})"
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out or "(top level)"
