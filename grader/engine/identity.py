"""Which machine answered a grading, as the VM says from inside.

A student controls the VM at the address graded, and a VM can pass the grader's connections on
to another machine (a forwarder on its ports 22, 25, 110 ... leading to a classmate's VM): the
grading then sees the other machine's state and marks the student for it. From inside, a
grading records what the machine that answered says of itself: the address its SSH server was
reached at and the address the connection came from (SSH_CONNECTION), its host name, and its
own network addresses. Asked through ``host`` as the checks ask (recorded, replayed by a
regrade).

Told apart (``answered_elsewhere``): the connection to the address graded came *from that same
address* to a machine that does not have it: the machine at the address graded relayed the
grader's connection onward. The usual ways of reaching a lab VM are not that:

* the VM's own address graded (a lab network, a bridged VM): the address is the VM's own;
* a NAT port forward (VirtualBox, VMware: the grader connects to the host's port 2222): the
  connection reaches the VM from the NAT's gateway (10.0.2.2), not from the address graded;
* a jump host (ssh -J): the grader reaches the VM's own address from the jump host.

Across gradings (``shared``), a machine is known by what it is, never by an address: DHCP gives
an address to one VM today and to a classmate's next week. What a grading records of the
machine that answered: its SSH host key (as the grader saw it), and, from inside, digests of its
/etc/machine-id and of that machine-id with the kernel's boot id (random at each boot, so two
copies of one image, which share a machine-id, are told apart while they run). A value most of
the class shares (the handed-out image's) tells no machines apart. Machines sharing one kernel
(containers, the lab simulator's VMs) share its boot id: their machine-ids tell them apart.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from grader.base.errors import CheckError, HostError
from grader.base.results import Flag
from grader.evidence.archive import NeedsLiveVM

ANSWERED_ELSEWHERE = "answered_elsewhere"

#: Gradings recorded before the machine-id and boot id were asked ran this (a regrade of their
#: archive asks it again, as they did)
EARLIER_COMMAND = (
    'c="${SSH_CONNECTION:-}"; [ -n "$c" ] || c=$(tr "\\000" "\\n" < /proc/$PPID/environ '
    "2>/dev/null | sed -n 's/^SSH_CONNECTION=//p'); printf 'ssh %s\\n' \"$c\"; "
    "printf 'name %s\\n' \"$(hostname 2>/dev/null)\"; "
    "ip -o addr show 2>/dev/null | awk '{print \"addr\", $4}'"
)
#: One command, one round trip: SSH_CONNECTION (or, under sudo, its parent's), the host name,
#: the machine's own addresses, its machine-id and the kernel's boot id.
COMMAND = (
    "printf 'machine-id %s\\n' \"$(head -c 100 /etc/machine-id 2>/dev/null)\"; "
    "printf 'boot-id %s\\n' \"$(head -c 100 /proc/sys/kernel/random/boot_id 2>/dev/null)\"; "
    + EARLIER_COMMAND
)
MACHINE_ID = "machine_id"  # a digest of the machine's /etc/machine-id
MACHINE_BOOT = "machine_boot"  # a digest of its machine-id with the kernel's boot id
#: What a machine-id (32 hex digits) or a boot id (a UUID) looks like; anything else is not one
_ID = re.compile(r"[0-9a-f][0-9a-f-]{15,63}")


def identify(host: Any) -> dict[str, list[str]]:
    """What the machine that answered says of itself: ``ssh`` (SSH_CONNECTION: client, its
    port, server, its port), ``name``, ``addresses`` (without their prefix length),
    ``machine_id`` and ``machine_boot`` (digests: see ``parse``)."""
    try:
        said = host.run(COMMAND).stdout
    except NeedsLiveVM:  # a regrade of a grading recorded before the machine-id was asked
        try:
            said = host.run(EARLIER_COMMAND).stdout
        except (CheckError, HostError):
            return {}
    except (CheckError, HostError):
        return {}  # not asked (an archive from before this was asked, the deadline)
    return parse(said)


def _digest(kind: str, value: str) -> str:
    """A value that identifies a machine as a report keeps it: a short digest (a machine-id is
    the machine's own, not to be published), the same for the same value on any grading."""
    return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()[:16]


def parse(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {"ssh": [], "name": [], "addresses": []}
    machine_id = boot_id = ""
    for line in text.splitlines()[:200]:
        kind, _, value = line.partition(" ")
        value = value.strip()[:200]
        if not value:
            continue
        if kind == "ssh" and len(value.split()) == 4:
            found["ssh"].append(value)
        elif kind == "name":
            found["name"].append(value)
        elif kind == "addr":
            found["addresses"].append(value.split("/", 1)[0])
        elif kind in ("machine-id", "boot-id") and _ID.fullmatch(value.lower()):
            if kind == "machine-id":
                machine_id = machine_id or value.lower()
            else:
                boot_id = boot_id or value.lower()
    if machine_id:
        found[MACHINE_ID] = [_digest("machine-id", machine_id)]
        if boot_id:
            found[MACHINE_BOOT] = [_digest("machine-boot", f"{machine_id} {boot_id}")]
    return {k: v for k, v in found.items() if v}


def is_own(address: str) -> bool:
    """An address that says nothing about which machine it is: loopback or link-local."""
    lowered = address.lower()
    return lowered.startswith(("127.", "fe80:")) or lowered in ("::1", "0.0.0.0", "::")


def answered_elsewhere(address: str | None, machine: Mapping[str, Sequence[str]]) -> Flag | None:
    """A flag when the machine at ``address`` (the address graded) relayed the grader's SSH
    connection to another machine, which answered the grading."""
    if not address or not machine.get("ssh"):
        return None
    client, _, server, port = machine["ssh"][0].split()
    own = [a for a in machine.get("addresses", ()) if not is_own(a)]
    if address in own or client != address:
        return None  # direct, or a NAT or jump host: see the module's docstring
    name = machine.get("name", ["?"])[0]
    return Flag(
        ANSWERED_ELSEWHERE,
        f"the grading of {address} was answered by another machine: the SSH connection to "
        f"{address} came from {address} itself and reached {server} port {port} on a machine "
        f"named {name} whose addresses are {', '.join(own) or 'unknown'}: the machine at "
        f"{address} passed the grader's connections on. Its marks are that machine's.",
    )


# ----- what students share ---------------------------------------------------------------

#: A value the image handed out gives everyone: shared by more than half of the students, and
#: by at least this many (two students sharing one value in a class of three is a pair)
IMAGE_MINIMUM = 3
HOST_KEY = "host_key"
REACHED = "reached"  # the address a grading's SSH server was reached at (SSH_CONNECTION)
ANSWERED_BY_CLASSMATE = "answered_by_classmate"
GRADED = "graded"  # the address graded


@dataclass(frozen=True)
class Sighting:
    """What one grading of one student showed of their machine: kind -> values (``host_key``,
    ``machine_id`` and ``machine_boot`` digests, ``unique:<id>`` digests, ``reached``,
    ``graded``), and where it was seen, for evidence."""

    student: str
    values: Mapping[str, Collection[str]]
    where: str = ""  # "run 7, the VM as seen 2026-12-01T12:05:00Z"


def shared(
    sightings: Sequence[Sighting],
    what: Mapping[str, str],
    image: Collection[str] = (),
) -> tuple[dict[str, list[Flag]], list[str]]:
    """Each student's flags for what their machine shares with classmates', and the notes for
    what most of the class shares (the image's: no flag). ``what``: how each kind is named
    ("SSH host key", "machine-id"); ``image``: values known to be the handed-out image's."""
    students = sorted({s.student for s in sightings})
    holders: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for s in sightings:
        for kind, values in s.values.items():
            if kind in (REACHED, GRADED, ANSWERED_ELSEWHERE):
                continue
            for value in values:
                holders[(kind, value)].setdefault(s.student, s.where)
    #: what the handed-out image gives: it tells no students, and no machines, apart
    common = {
        (kind, value)
        for (kind, value), who in holders.items()
        if value in image or (2 * len(who) > len(students) and len(who) >= IMAGE_MINIMUM)
    }
    flags: dict[str, list[Flag]] = defaultdict(list)
    notes: dict[str, str] = {}
    shown: dict[tuple[str, str], set[str]] = defaultdict(set)
    by_kind: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)  # (student, kind) -> others
    for (kind, value), who in holders.items():
        if len(who) < 2 or kind in (MACHINE_ID, MACHINE_BOOT):
            continue  # the machine's own ids say which machine answered (below), no more
        if (kind, value) in common:
            name = what.get(kind, kind)
            notes[kind] = (
                f"{len(who)} of {len(students)} students' VMs share one {name}: the image they "
                "were handed out gives it, so it says nothing of who copied whom (no flags)"
                if value not in image
                else f"the handed-out image's {name} is on {len(who)} students' VMs (no flags)"
            )
            continue
        for student in who:
            shown[(student, kind)].add(value)
            for other, where in who.items():
                if other != student:
                    by_kind[(student, kind)].setdefault(other, where)
    for (student, kind), others in sorted(by_kind.items()):
        seen = "; ".join(f"{o}{f' ({w})' if w else ''}" for o, w in others.items())
        # a host key's fingerprint is public; a [[unique]] value is kept as a digest only
        value = f" ({', '.join(sorted(shown[(student, kind)]))})" if kind == HOST_KEY else ""
        flags[student].append(
            Flag(
                f"shared_{kind.removeprefix('unique:')}",
                f"same {what.get(kind, kind)}{value} as {seen}: a copied VM, or one VM "
                "submitted twice?",
                tuple(others),
            )
        )
    # a grading answered at an address where a classmate is graded, by the very machine that
    # answered the classmate's grading there (an address alone is not a machine: DHCP gives
    # a classmate the address another had last week)
    graded_at: dict[str, list[Sighting]] = defaultdict(list)
    for s in sightings:
        for address in s.values.get(GRADED, ()):
            graded_at[address].append(s)
    for s in sightings:
        mine = _machine(s, common)
        for address in s.values.get(REACHED, ()) if mine else ():
            for owner in graded_at.get(address, ()):
                same = mine & _machine(owner, common)
                if owner.student == s.student or not same:
                    continue
                where = f" ({s.where})" if s.where else ""
                seen = f" ({owner.where})" if owner.where else ""
                known = ", ".join(sorted({_MACHINE[kind] for kind, _ in same}))
                flags[s.student].append(
                    Flag(
                        ANSWERED_BY_CLASSMATE,
                        f"its grading{where} was answered by the machine at {address}, where "
                        f"{owner.student} is graded{seen}: the same machine (its {known})",
                        (owner.student,),
                    )
                )
                flags[owner.student].append(
                    Flag(
                        ANSWERED_BY_CLASSMATE,
                        f"this student's machine at {address}{seen} answered {s.student}'s "
                        f"grading{where}: the same machine (its {known})",
                        (s.student,),
                    )
                )
    for s in sightings:  # a grading's own finding (its report's flag), with where it was seen
        for message in s.values.get(ANSWERED_ELSEWHERE, ()):
            where = f" ({s.where})" if s.where else ""
            flags[s.student].append(Flag(ANSWERED_ELSEWHERE, message + where))
    return {k: _unique_flags(v) for k, v in flags.items()}, list(notes.values())


#: What says which machine answered a grading, and how a flag names it
_MACHINE = {
    HOST_KEY: "SSH host key",
    MACHINE_ID: "machine-id",
    MACHINE_BOOT: "machine-id and boot id",
}


def _machine(sighting: Sighting, common: Collection[tuple[str, str]]) -> set[tuple[str, str]]:
    """What tells the machine that answered ``sighting`` from others: its host key, machine-id
    and boot, less what the image gives every VM. Empty: nothing known of which machine."""
    return {
        (kind, value)
        for kind in _MACHINE
        for value in sighting.values.get(kind, ())
        if (kind, value) not in common
    }


def _unique_flags(flags: list[Flag]) -> list[Flag]:
    return list(dict.fromkeys(flags))


def sighting_of(report: Any, where: str = "") -> Sighting:
    """What a report shows of its student's machine."""
    values: dict[str, list[str]] = {}
    if report.host_key:
        values[HOST_KEY] = [report.host_key]
    for unique, digests in report.fingerprints.items():
        values[f"unique:{unique}"] = list(digests)
    ssh = report.machine.get("ssh") if report.machine else None
    if ssh:
        values[REACHED] = [ssh[0].split()[2]]
    for kind in (MACHINE_ID, MACHINE_BOOT):
        if report.machine and report.machine.get(kind):
            values[kind] = list(report.machine[kind])
    if report.address:
        values[GRADED] = [report.address]
    return Sighting(report.student or report.host, values, where)


def names(unique: Sequence[Any]) -> dict[str, str]:
    """How each kind of value is named in a flag, for a rubric's [[unique]]."""
    return {HOST_KEY: "SSH host key", **{f"unique:{u.id}": u.what for u in unique}}


def class_notes(reports: Sequence[Any], unique: Sequence[Any]) -> list[str]:
    """What most of a class's VMs share (the image's), said once for the class."""
    graded = [r for r in reports if r.status == "graded" and r.student]
    return shared([sighting_of(r) for r in graded], names(unique))[1]
