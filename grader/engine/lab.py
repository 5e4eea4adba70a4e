"""The ``lab`` fixture: the rubric's paths and variables, as a check sees them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from grader.base.errors import CheckError
from grader.base.outcomes import NeedsVariable


class Paths:
    """Attribute access to the rubric's [paths]: ``lab.paths.web_root``."""

    def __init__(self, paths: Mapping[str, str | list[str]]) -> None:
        self._paths = dict(paths)

    def __getattr__(self, name: str) -> str | list[str]:
        try:
            return self._paths[name]
        except KeyError:
            raise CheckError(f"the rubric's [paths] has no {name!r}") from None

    def get(self, name: str, default: str | list[str]) -> str | list[str]:
        """A path the rubric may leave out (one a pack added later): ``default`` then."""
        return self._paths.get(name, default)


@dataclass(frozen=True)
class Lab:
    """The ``lab`` fixture: the rubric's ``[paths]`` (``lab.paths.motd``) and its variables
    as this grading resolved them (``lab.var("owner")``). Records nothing: a check's evidence
    is what it asks the VM with what these say."""

    paths: Paths
    vars: Mapping[str, str] = field(default_factory=dict)

    def var(self, name: str) -> str:
        """A variable's value; the check is skipped when it was not given (empty)."""
        if name not in self.vars:
            raise CheckError(f"the rubric's [vars] has no {name!r}")
        value = self.vars[name]
        if not value:
            raise NeedsVariable(
                msg=f"needs the variable {name} (give it with --var-env {name}=ENVVAR, "
                f"or --var {name}=...)",
            )
        return value
