"""What the Lab 7 checks share: reading DNS answers and Apache's pages."""

from __future__ import annotations

from typing import Any


def records(answer: Any, rtype: str) -> list[str]:
    """The data of the answer's records of one type (``www.z. 300 IN A 1.2.3.4`` -> 1.2.3.4)."""
    found = []
    for line in answer.answer:
        fields = line.split(None, 4)
        if len(fields) == 5 and fields[3].upper() == rtype.upper():
            found.append(fields[4])
    return found


def ask(outside: Any, name: str, rtype: str) -> Any:
    """A DNS question to the VM; a lost mark when nothing answers (the answer says why)."""
    answer = outside.dns(name, rtype)
    assert answer.ok, f"no DNS answer from the VM for {name} {rtype}: {answer.text}"
    return answer


def served(answer: Any, name: str, rtype: str, zone: str) -> None:
    """Fail, saying why, when the VM's answer holds no record of ``rtype`` for ``name``."""
    if records(answer, rtype):
        return
    if answer.rcode == "REFUSED":
        raise AssertionError(
            f"named refused to answer for {name}: it does not serve the zone {zone} "
            "(zone statement in named.conf.local?)"
        )
    if answer.rcode == "NXDOMAIN":
        raise AssertionError(
            f"{name} does not exist in the zone named serves: add the record, bump the serial "
            "and reload the zone (rndc reload)"
        )
    raise AssertionError(f"no {rtype} record for {name} ({answer.rcode or 'no answer'})")
