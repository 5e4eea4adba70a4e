"""`grade prove --host` reaches its VM as a grading does: a VM still booting (no answer yet)
is tried again after a pause, not given up on at once."""

from __future__ import annotations

import pytest

from grader.actions import prove
from grader.base.errors import HostError
from grader.engine.runner import Options, Setup
from grader.machine.execution import Target


def setup(attempts: int = 2) -> Setup:
    return Setup(Options(known_hosts=None, attempts=attempts, retry_pause=0), Target("vm"), None, 1)


def test_a_live_vm_still_booting_is_tried_again(monkeypatch):
    tried = []

    def connect(target, known_hosts, timeout):
        tried.append(target.host)
        if len(tried) == 1:
            raise HostError("timeout", "no answer to the TCP connection within 5 s")
        return "session"

    monkeypatch.setattr(prove, "connect", connect)
    assert prove.connected(setup()) == "session" and tried == ["vm", "vm"]


def test_a_failure_that_does_not_pass_is_not_tried_again(monkeypatch):
    tried = []

    def connect(target, known_hosts, timeout):
        tried.append(target.host)
        raise HostError("auth_failed", "the key was refused")

    monkeypatch.setattr(prove, "connect", connect)
    with pytest.raises(HostError, match="refused"):
        prove.connected(setup())
    assert tried == ["vm"]
