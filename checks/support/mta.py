"""The mail transfer agent as the checks see it: its daemon's processes and its queues."""

from __future__ import annotations

from typing import Any

from grader.toolkit import Process, listdir, processes

SUPER_SERVERS = ("inetd", "xinetd")
QUEUE_FILE_PREFIXES = ("qf", "Qf", "hf")  # sendmail's control files: one per waiting message

#: What a failure caused by the MTA not running says it comes from (rubric.toml's [causes])
SENDMAIL_DOWN = "sendmail_down"


def is_mta(process: Process) -> bool:
    if process.comm.startswith("sendmail"):
        return "MSP:" not in process.args  # the submission queue runner is not the MTA
    if process.comm in ("exim4", "exim"):
        return True
    return process.comm == "master" and "postfix" in process.args


def mta_processes(host: Any) -> list[Process]:
    return [p for p in processes(host).values() if is_mta(p)]


def queued(host: Any, lab: Any) -> dict[str, list[str]]:
    """The messages waiting in each mail queue folder that has any."""
    waiting = {}
    for folder in lab.paths.mail_queues:
        if host.file(folder).is_directory:
            names = [n for n in listdir(host, folder) if n.startswith(QUEUE_FILE_PREFIXES)]
            if names:
                waiting[folder] = names
    return waiting


def waits_for_the_mta(host: Any, lab: Any) -> bool:
    """Mail waits in a queue while no MTA daemon runs: a missing message may be there."""
    return not mta_processes(host) and bool(queued(host, lab))
