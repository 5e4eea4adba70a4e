"""Exercise 1: the student's own zone, served by BIND's named."""

from grader.toolkit import compare_views, is_loopback, listeners, output, processes

from .support import ask, records, served


def test_named_running(host):
    """BIND's named runs."""
    named = [p for p in processes(host).values() if p.comm == "named"]
    assert named, "named is not running"


def test_named_listens_outside(host, outside):
    """named answers on the VM's network address, not only on 127.0.0.1.

    UDP and TCP port 53, on an address other than loopback.
    """
    compare_views(host, outside, 53)
    found = listeners(host, 53, ("udp", "tcp"))
    assert found, "nothing listens on port 53"
    outward = [x for x in found if not is_loopback(x.address)]
    assert outward, (
        f"named listens only on {', '.join(sorted({x.address for x in found}))} (listen-on in "
        "named.conf.options), so nothing outside the VM can ask it"
    )


def test_www_record(lab, outside):
    """www in the zone points at the VM's own address."""
    zone = lab.var("zone")
    name = f"www.{zone}"
    answer = ask(outside, name, "A")
    served(answer, name, "A", zone)
    addresses = records(answer, "A")
    assert outside.address in addresses, (
        f"www.{zone} points at {', '.join(addresses)}, not at the VM's address {outside.address}"
    )


def test_mx_record(lab, outside):
    """The zone has an MX record."""
    zone = lab.var("zone")
    served(ask(outside, zone, "MX"), zone, "MX", zone)


def test_shop_record(lab, outside):
    """shop in the zone has an address (an A record, or a CNAME)."""
    zone = lab.var("zone")
    name = f"shop.{zone}"
    answer = ask(outside, name, "A")
    if records(answer, "CNAME"):
        return
    served(answer, name, "A", zone)


def test_serial_bumped(host, lab, outside):
    """The zone's serial was bumped, and named serves the new one."""
    zone = lab.var("zone")
    initial = int(lab.var("initial_serial"))
    soa = records(ask(outside, zone, "SOA"), "SOA")
    assert soa, f"named serves no SOA record for {zone}"
    serving = int(soa[0].split()[2])
    checked = output(
        host, "named-checkzone %s %s", zone, f"{lab.paths.zone_dir.rstrip('/')}/db.{zone}"
    )
    on_disk = next(
        (int(w) for line in checked.splitlines() if "loaded serial" in line
         for w in line.split() if w.isdigit()),
        None,
    )  # fmt: skip
    if serving > initial:
        return
    if on_disk is not None and on_disk > serving:
        raise AssertionError(
            f"the zone file's serial is {on_disk}, but named still serves {serving}: reload the "
            f"zone (rndc reload {zone})"
        )
    raise AssertionError(
        f"the serial is still {serving}, as handed out: bump it (YYYYMMDDnn) when the zone "
        "changes, then reload it"
    )
