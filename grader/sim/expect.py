"""The verdicts a lab's author expects of the VMs they set up (``expected.toml`` in a pack):
the pack's regression set, graded by ``grade prove --expect``.

    [[vm]]
    name = "reference"
    scenario = "complete"            # a scenario of the pack's (booted on the simulator)
    expect = { "*" = "pass" }

    [[vm]]
    name = "my VM, as handed out"
    host = "10.0.0.5"                # a VM of the author's (the connection options: given)
    expect = { "*" = "fail", page_names_owner = "skipped" }

``"*"`` stands for every check a table does not name; a verdict is a status as the JSON
report words it (pass, fail, error, skipped). The file is validated as a rubric is: a mistake
names the file, the line, the key and the closest valid name.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from grader.base.closest import closest
from grader.base.errors import InputError
from grader.engine.rubric import KeyLocator

#: What a verdict may be: the statuses of the JSON report
STATUSES = ("pass", "fail", "error", "skipped")
#: What a table's ``expect`` says of every check it does not name
EVERY = "*"


class _VmModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=200)]
    host: Annotated[str, Field(min_length=1)] | None = None
    scenario: Annotated[str, Field(min_length=1)] | None = None
    expect: dict[str, Literal["pass", "fail", "error", "skipped"]]

    @model_validator(mode="after")
    def _one_place(self) -> _VmModel:
        if (self.host is None) == (self.scenario is None):
            raise ValueError("a VM is a host or a scenario: give one of them")
        return self


class _ExpectedModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    vm: Annotated[list[_VmModel], Field(min_length=1)]


@dataclass(frozen=True)
class ExpectedVM:
    """One VM and the verdict expected of each check on it."""

    name: str
    host: str | None  # a VM of the author's, reached as a grading reaches a host
    scenario: str | None  # or a scenario of the pack's, booted on the simulator
    expect: Mapping[str, str]  # check id, or "*" for every other one -> status
    line: int | None = None  # where its table is in the file

    def expected(self, check: str) -> str | None:
        """The verdict expected of ``check`` (None: the table says nothing of it)."""
        return self.expect.get(check, self.expect.get(EVERY))


@dataclass(frozen=True)
class Expected:
    path: Path
    vms: tuple[ExpectedVM, ...]

    @property
    def scenarios(self) -> list[str]:
        """The scenarios its VMs are, each once, in order."""
        return list(dict.fromkeys(vm.scenario for vm in self.vms if vm.scenario is not None))


@dataclass(frozen=True)
class Difference:
    """A check whose verdict on a VM is not the one expected."""

    vm: str
    check: str
    expected: str
    got: str  # its status, or "not graded" (the VM could not be graded)
    reason: str  # the check's message (or why the VM was not graded)


def load_expected(
    path: Path, checks: Collection[str], scenarios: Collection[str] | None = None
) -> Expected:
    """Read and check an expected-verdicts file against the pack's ``checks`` (ids) and its
    ``scenarios`` (names; None: the pack has none, so a VM must be a host)."""
    # lazy: start-up (tomllib only once a file is read)
    import tomllib

    from grader.engine.rubric_schema import describe_validation_error

    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as e:
        raise InputError(f"{path}: cannot read the expected verdicts: {e.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{path}: not valid TOML: {e}") from None
    where = KeyLocator(path, text)
    try:
        model = _ExpectedModel.model_validate(data)
    except ValidationError as e:
        raise InputError(_described(describe_validation_error(where, data, e))) from None
    problems = []
    names: dict[str, int] = {}
    for n, vm in enumerate(model.vm):
        at = where(("vm", n))
        if vm.name in names:
            problems.append(f"{at}vm[{n}] ({vm.name}).name: another VM has this name")
        names.setdefault(vm.name, n)
        for check in vm.expect:
            if check != EVERY and check not in checks:
                problems.append(
                    f"{where(('vm', n, 'expect'))}vm[{n}] ({vm.name}).expect: {check!r} is no "
                    f"check of the rubric{closest(check, checks)}"
                )
        if vm.scenario is not None and scenarios is None:
            problems.append(
                f"{where(('vm', n, 'scenario'))}vm[{n}] ({vm.name}).scenario: the pack has no "
                "scenarios (scenarios.py beside rubric.toml)"
            )
        elif vm.scenario is not None and scenarios is not None and vm.scenario not in scenarios:
            problems.append(
                f"{where(('vm', n, 'scenario'))}vm[{n}] ({vm.name}).scenario: {vm.scenario!r} is "
                f"no scenario of the pack{closest(vm.scenario, scenarios)}; its scenarios are "
                f"{', '.join(scenarios)}"
            )
    if problems:
        raise InputError("\n".join(problems))
    lines = where.lines
    return Expected(
        path,
        tuple(
            ExpectedVM(vm.name, vm.host, vm.scenario, dict(vm.expect), lines.get(("vm", n)))
            for n, vm in enumerate(model.vm)
        ),
    )


def _described(message: str) -> str:
    """pydantic's words for the one-of rule, as this file's reader reads them."""
    return message.replace("Value error, ", "")


def differences(
    vm: ExpectedVM, report: Mapping[str, Any] | None, why: str = ""
) -> list[Difference]:
    """Where ``report`` (a JSON report of the VM; None: it could not be graded, ``why``)
    differs from what is expected of ``vm``; [] when it does not."""
    if report is None or report.get("status") != "graded":
        said = why or str((report or {}).get("error") or (report or {}).get("status"))
        return [Difference(vm.name, EVERY, vm.expect.get(EVERY, "graded"), "not graded", said)]
    found = []
    graded = {str(c["id"]): c for c in report.get("checks", ())}
    for check, result in graded.items():
        wanted = vm.expected(check)
        if wanted is not None and result["status"] != wanted:
            found.append(
                Difference(vm.name, check, wanted, str(result["status"]), str(result["message"]))
            )
    for check in vm.expect:
        if check != EVERY and check not in graded:
            found.append(Difference(vm.name, check, vm.expect[check], "missing", "not graded"))
    return found


def shown(found: Sequence[Difference]) -> list[dict[str, str]]:
    """The differences as JSON values."""
    return [
        {"vm": d.vm, "check": d.check, "expected": d.expected, "got": d.got, "reason": d.reason}
        for d in found
    ]
