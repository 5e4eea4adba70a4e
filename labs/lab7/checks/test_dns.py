"""Exercise 1: the student's own zone, served by BIND's named.

Each check decides on what named really serves to a question from outside the VM; named's own
configuration and named-checkzone's word on the zone file are read to say why, never to decide.
"""

from grader.toolkit import compare_views, is_loopback, listeners, number, processes, unreadable

from .support import (
    LARGEST_SERIAL,
    ask,
    check_zone,
    named_records,
    records,
    served,
    why_not_served,
    zone_file,
)

MX_PREFERENCE = 10


def test_named_running(host):
    """BIND's named runs."""
    named = [p for p in processes(host).values() if p.comm == "named"]
    assert named, "named is not running"


def _outward(address: str) -> bool:
    """An address other machines can reach: not loopback, not IPv6 link-local (as ss writes
    them: [fe80::1]%eth0)."""
    plain = address.split("%", 1)[0].strip("[]").lower()
    return not is_loopback(plain) and not plain.startswith("fe80:")


def test_named_listens_outside(host, lab, outside):
    """named answers on the VM's network address, not only on 127.0.0.1.

    A DNS question to the VM's address, from outside, gets an answer (whatever it says).
    """
    compare_views(host, outside, 53)
    zone = lab.vars.get("zone") or "localhost"
    answer = outside.dns(zone, "SOA")  # the question serial_bumped asks too: asked once
    if answer.ok:
        return
    found = listeners(host, 53, ("udp", "tcp"))
    if not found:
        raise AssertionError(f"nothing listens on port 53 ({answer.text})")
    outward = sorted({x.address for x in found if _outward(x.address)})
    inward = sorted({x.address for x in found if not _outward(x.address)})
    if not outward:
        raise AssertionError(
            f"named listens only on {', '.join(inward)} (loopback and link-local addresses, "
            f"which nothing outside the VM can reach: listen-on in named.conf.options), so a "
            f"question to {outside.address} got no answer: {answer.text}"
        )
    raise AssertionError(
        f"named listens on {', '.join(outward)}, yet a question to {outside.address} from "
        f"outside got no answer ({answer.text}): a firewall, or another address?"
    )


def test_www_record(host, lab, outside):
    """www in the zone points at the VM's own address."""
    zone = lab.var("zone")
    name = f"www.{zone}"
    answer = ask(outside, name, "A")
    served(host, lab, answer, name, "A", zone)
    addresses = records(answer, "A")
    assert outside.address in addresses, (
        f"www.{zone} points at {', '.join(addresses)}, not at the VM's address {outside.address}"
    )


def test_mx_record(host, lab, outside):
    """The zone's MX record names mail in the zone, with preference 10.

    An MX record for the zone: preference 10, mail.ZONE.
    """
    zone = lab.var("zone")
    answer = ask(outside, zone, "MX")
    served(host, lab, answer, zone, "MX", zone)
    wanted = f"mail.{zone}."
    found = []
    for data in records(answer, "MX"):
        preference, _, target = data.partition(" ")
        value = number(preference, 65535)
        found.append((-1 if value is None else value, target.lower()))
    if any(p == MX_PREFERENCE and t == wanted for p, t in found):
        return
    for preference, target in found:
        if target == f"mail.{zone}.{zone}.":
            raise AssertionError(
                f"the MX record names {target}: mail.{zone} written without its trailing dot "
                f"gets the zone added again (write mail.{zone}. or just mail)"
            )
        if target == wanted:
            raise AssertionError(
                f"the MX record for {zone} has preference {preference}; the handout asks for "
                f"{MX_PREFERENCE}"
            )
    shown = ", ".join(f"{p} {t}" for p, t in found)
    raise AssertionError(f"the MX record for {zone} is {shown}, not {MX_PREFERENCE} {wanted}")


def test_shop_record(host, lab, outside):
    """shop in the zone has an address (an A record, or a CNAME to a name that has one).

    shop.ZONE resolves to an address in the zone, directly or through a CNAME.
    """
    zone = lab.var("zone")
    name = f"shop.{zone}"
    answer = ask(outside, name, "A")
    if records(answer, "A"):
        return  # named follows a CNAME within its zone and gives the address it leads to
    aliases = named_records(answer, "CNAME")
    if not aliases:
        served(host, lab, answer, name, "A", zone)
    target = aliases[-1][1].lower()
    if target.endswith(f".{zone}.{zone}."):
        raise AssertionError(
            f"shop is a CNAME to {target}, which does not exist: a name written without its "
            f"trailing dot gets the zone added again (www.{zone}. or just www)"
        )
    if not target.endswith(f".{zone}.") and target != f"{zone}.":
        raise AssertionError(
            f"shop is a CNAME to {target}, outside your zone: point it at a name in {zone} "
            "that has an address (www)"
        )
    raise AssertionError(f"shop is a CNAME to {target}, which has no address in the zone")


def test_serial_bumped(host, lab, outside):
    """The zone's serial was bumped, and named serves the new one."""
    zone = lab.var("zone")
    initial = int(lab.var("initial_serial"))
    answer = outside.dns(zone, "SOA")
    soa = records(answer, "SOA") if answer.ok else []
    if not soa:
        why = why_not_served(host, lab, answer, zone, zone) if answer.ok else answer.text
        raise AssertionError(f"named serves no SOA record for {zone}: {why}")
    fields = soa[0].split()
    serving = number(fields[2], LARGEST_SERIAL) if len(fields) == 7 else None
    if serving is None:
        raise unreadable(f"the SOA record for {zone}", 1, soa[0], "MNAME RNAME SERIAL ...")
    if serving > initial:
        return
    checked = check_zone(host, zone, zone_file(host, lab, zone))  # explains, never decides
    if not checked.loads:
        raise AssertionError(
            f"named serves serial {serving}: the zone file {checked.path} does not load "
            f"(named-checkzone: {checked.said}), so named keeps the zone it had: fix the file, "
            f"then rndc reload {zone}"
        )
    if checked.serial is not None and checked.serial > serving:
        raise AssertionError(
            f"the zone file's serial is {checked.serial}, but named still serves {serving}: "
            f"reload the zone (rndc reload {zone})"
        )
    if serving < initial:
        raise AssertionError(
            f"the serial went down: named serves {serving}, lower than the {initial} handed "
            "out; a serial only ever grows (YYYYMMDDnn, e.g. today's date and 01), or "
            "secondaries never take the change"
        )
    raise AssertionError(
        f"the serial is still {serving}, as handed out: bump it (YYYYMMDDnn) when the zone "
        "changes, then reload it"
    )
