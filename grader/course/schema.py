"""course.toml's schema, as pydantic validates it (see grader.course.config)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"
_STAFF = r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*(@[A-Za-z0-9][A-Za-z0-9.-]*)?$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class LateModel(_Model):
    per_day: Annotated[float, Field(ge=0, le=1)] = 0.0
    max: Annotated[float, Field(ge=0, le=1)] = 0.0
    grace_minutes: Annotated[float, Field(ge=0)] = 0.0


class RequestsModel(_Model):
    """How often a student may ask for a grading of their VM on the web."""

    # at most one every so long: "10m", "1h", "30s" (a number and s, m or h)
    every: Annotated[str, Field(pattern=r"^[0-9]{1,6}[smh]$")] = "10m"
    per_day: Annotated[int, Field(ge=0, le=1000)] = 12  # and so many a day (0: none)
    count: bool = True  # false: practice the book keeps, that no mark counts


class FromEnvModel(_Model):
    """A variable's value read from an environment variable (a secret: never in the file)."""

    env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class LabModel(_Model):
    id: Annotated[str, Field(pattern=_NAME)]
    lab: str | None = None  # a pack name
    rubric: str | None = None  # or a rubric file, relative to course.toml
    due: datetime
    policy: Literal["last_before_due", "best", "last"] = "last_before_due"
    late: LateModel = LateModel()
    # `course due` grading an incomplete student again within this many minutes after the due
    # time (and the grace): what it decides counts on time; later, it is late work
    retry_minutes: Annotated[float, Field(ge=0, le=24 * 60)] = 30.0
    # the lab's variables for every student (the roster's columns override them per student)
    vars: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], str | FromEnvModel] = {}
    # values the handed-out image gives every VM (a machine-id, host key fingerprints): they
    # flag nobody, however few VMs are graded
    image: list[Annotated[str, Field(min_length=1)]] = []
    # what a student sees on the web of their gradings, and when: everything at once; the mark
    # and the checks that lost marks until the due time, then everything; or the mark only
    # until staff release the lab's feedback (grade book release)
    feedback: Literal["immediate", "after_due", "on_release"] = "immediate"
    requests: RequestsModel = RequestsModel()


class LtiModel(_Model):
    """One LMS this course is registered with as an LTI 1.3 tool (``[[lti]]``)."""

    issuer: Annotated[str, Field(pattern=r"^https?://[^\s]+$", max_length=300)]
    client_id: Annotated[str, Field(min_length=1, max_length=300)]
    deployment_ids: Annotated[list[Annotated[str, Field(min_length=1, max_length=300)]],
                              Field(min_length=1)]  # fmt: skip
    auth_login_url: Annotated[str, Field(pattern=r"^https?://[^\s]+$", max_length=1000)]
    auth_token_url: Annotated[str, Field(pattern=r"^https?://[^\s]+$", max_length=1000)]
    key_set_url: Annotated[str, Field(pattern=r"^https?://[^\s]+$", max_length=1000)]
    # the audience of the tool's token requests, where the LMS names one (Brightspace:
    # https://api.brightspace.com/auth/token); default the token address
    auth_audience: Annotated[str, Field(min_length=1, max_length=1000)] | None = None
    # how a launch's user is found on the roster the first time: "email", "sis_id",
    # "username", or a claim's path (CLAIM or CLAIM#KEY, e.g. the custom claim's student_id)
    match: Annotated[str, Field(min_length=1, max_length=300)] = "email"


class CourseModel(_Model):
    title: Annotated[str, Field(min_length=1)]
    roster: Annotated[str, Field(min_length=1)]
    labs: Annotated[list[LabModel], Field(min_length=1)]
    extensions: dict[str, dict[str, datetime]] = {}
    # the gradebook: sqlite:///PATH or postgresql://USER@HOST/NAME (its password from
    # ~/.pgpass or a service file, never here); default gradebook.sqlite in the course folder
    db: Annotated[str, Field(min_length=1)] | None = None
    # the book and runs/ readable by their owner only (marks, override reasons)
    private: bool = True
    # who may sign in to the web as staff (grade serve link --staff NAME): a name, or an email
    # (an LMS's staff are known by their LMS user name or their whole email)
    staff: list[Annotated[str, Field(pattern=_STAFF)]] = []
    # the LMSs the course is an LTI 1.3 tool of (grade serve: sign-in, deep links, marks)
    lti: list[LtiModel] = []
