"""Lab 7's simulated scenarios: a student's VM after the lab done right, as handed out, and with
each of the common mistakes. Each VM is named after its student: the zone and the word its
pages carry are that student's variant, derived by the rubric itself (with COURSE_SECRET).

Run with the lab simulator (tests/labsim), as root: real BIND 9 (named) and Apache 2 from
Debian's packages, in the same namespace VMs as Lab 6's.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from grader.engine.rubric import load_rubric
from tests.labsim.scenarios import Scenario
from tests.labsim.student import wait_for
from tests.labsim.vm import VM

HERE = Path(__file__).resolve().parent
RUBRIC = HERE / "rubric.toml"
COURSE_SECRET = "lab7-simulator-secret"  # the course secret the simulated class is graded with
GRADING_VARS = {"course_secret": COURSE_SECRET}  # what `tests.labsim prove` grades with
TOOLS = ("named", "named-checkzone", "rndc", "apache2ctl")  # what the VMs run, besides sshd
INITIAL_SERIAL = "2026010100"
SERIAL = "2026112801"


@dataclass(frozen=True)
class Variant:
    zone: str
    token: str


def variant(student: str) -> Variant:
    """The student's variant, as the rubric derives it."""
    values = load_rubric(RUBRIC).resolve_vars({"course_secret": COURSE_SECRET}, student=student)
    return Variant(values["zone"], values["token"])


ZONE_FILE = """$TTL 300
@   IN SOA ns.{zone}. hostmaster.{zone}. ( {serial} 3600 900 604800 300 )
    IN NS  ns.{zone}.
ns  IN A   {address}
"""
RECORDS = """www  IN A   {address}
mail IN A   {address}
@    IN MX  10 mail.{zone}.
shop IN CNAME www.{zone}.
"""
OPTIONS = """options {{
    directory "/var/cache/bind";
    listen-on {{ {listen}; }};
    listen-on-v6 {{ none; }};
    recursion no;
    allow-query {{ any; }};
    dnssec-validation no;
}};
"""
SHOP_SITE = """<VirtualHost *:80>
    ServerName {server_name}
    DocumentRoot /var/www/shop
</VirtualHost>
"""


def lab_start(vm: VM) -> None:
    """The VM as handed out: named serving an empty zone on 127.0.0.1 only, Apache's default
    site with a folder it lists."""
    mine = variant(vm.name)
    zone_file = f"/etc/bind/db.{mine.zone}"
    vm.sh(
        f"printf '%s' {shlex.quote(OPTIONS.format(listen='127.0.0.1'))} "
        "> /etc/bind/named.conf.options && "
        f'printf \'zone "%s" {{ type master; file "%s"; }};\\n\' {mine.zone} {zone_file} '
        "> /etc/bind/named.conf.local && "
        f"printf '%s' {shlex.quote(ZONE_FILE.format(zone=mine.zone, serial=INITIAL_SERIAL, address=vm.address))} "  # noqa: E501
        f"> {zone_file} && "
        "mkdir -p /run/named /var/cache/bind && chown bind:bind /run/named /var/cache/bind && "
        "(test -f /etc/bind/rndc.key || rndc-confgen -a -u bind >/dev/null 2>&1) && "
        "named -u bind"
    )
    wait_for(vm, "ss -Hlun 'sport = :53' | grep -q 127.0.0.1")
    vm.sh(
        "mkdir -p /var/www/html/files /run/apache2 /run/lock/apache2 && "
        "for f in notes.txt draft.txt; do echo private > /var/www/html/files/$f; done && "
        "apache2ctl start"
    )
    wait_for(vm, "ss -Hltn 'sport = :80' | grep -q LISTEN")


def do_the_lab(
    vm: VM,
    *,
    bump_serial: bool = True,
    reload_zone: bool = True,
    listen_outside: bool = True,
    shop_server_name: str | None = None,
    listing_off: bool = True,
) -> None:
    """Lab 7 done by a student, with an optional mistake given by one keyword."""
    lab_start(vm)
    mine = variant(vm.name)
    zone_file = f"/etc/bind/db.{mine.zone}"
    # Exercise 1: the records, the serial, the reload, listening outside
    vm.sh(
        f"printf '%s' {shlex.quote(RECORDS.format(zone=mine.zone, address=vm.address))} "
        f">> {zone_file}"
    )
    if bump_serial:
        vm.sh(f"sed -i 's/{INITIAL_SERIAL}/{SERIAL}/' {zone_file}")
    if listen_outside:
        vm.sh(
            f"printf '%s' {shlex.quote(OPTIONS.format(listen='any'))} "
            "> /etc/bind/named.conf.options && rndc stop && sleep 0.5 && named -u bind"
        )
        wait_for(vm, f"ss -Hlun 'sport = :53' | grep -q {vm.address}")
    elif reload_zone:
        vm.sh(f"rndc reload {mine.zone} >/dev/null")
    if listen_outside and not reload_zone:
        pass  # restarted above: named loaded the file as it is (a restart is a reload)
    # Exercise 2: the page, the listing, the second virtual host
    vm.sh(f"printf '<h1>Welcome</h1><p>{mine.token}</p>\\n' > /var/www/html/index.html")
    if listing_off:
        vm.sh(
            "sed -i 's/Options Indexes FollowSymLinks/Options -Indexes +FollowSymLinks/' "
            "/etc/apache2/apache2.conf"
        )
    vm.sh(
        f"mkdir -p /var/www/shop && printf '<h1>shop</h1><p>{mine.token}</p>\\n' "
        "> /var/www/shop/index.html && "
        f"printf '%s' {shlex.quote(SHOP_SITE.format(server_name=shop_server_name or 'shop.' + mine.zone))} "  # noqa: E501
        "> /etc/apache2/sites-available/shop.conf && a2ensite -q shop >/dev/null && "
        "apache2ctl graceful"
    )
    wait_for(vm, "ss -Hltn 'sport = :80' | grep -q LISTEN")


def serial_not_bumped(vm: VM) -> None:
    """The zone edited, but its serial not bumped and named never told: it serves the old zone."""
    lab_start(vm)
    mine = variant(vm.name)
    vm.sh(
        f"printf '%s' {shlex.quote(RECORDS.format(zone=mine.zone, address=vm.address))} "
        f">> /etc/bind/db.{mine.zone}"
    )
    vm.sh(
        "sed -i 's/listen-on { 127.0.0.1; };/listen-on { any; };/' /etc/bind/named.conf.options "
        "&& rndc reconfig >/dev/null"  # listening outside, the zone itself not reloaded
    )
    wait_for(vm, f"ss -Hlun 'sport = :53' | grep -q {vm.address}")
    do_the_web(vm)


def do_the_web(vm: VM) -> None:
    mine = variant(vm.name)
    vm.sh(f"printf '<h1>Welcome</h1><p>{mine.token}</p>\\n' > /var/www/html/index.html")
    vm.sh(
        "sed -i 's/Options Indexes FollowSymLinks/Options -Indexes +FollowSymLinks/' "
        "/etc/apache2/apache2.conf"
    )
    vm.sh(
        f"mkdir -p /var/www/shop && printf '<h1>shop</h1><p>{mine.token}</p>\\n' "
        "> /var/www/shop/index.html && "
        f"printf '%s' {shlex.quote(SHOP_SITE.format(server_name='shop.' + mine.zone))} "
        "> /etc/apache2/sites-available/shop.conf && a2ensite -q shop >/dev/null && "
        "apache2ctl graceful"
    )


def services_stopped(vm: VM) -> None:
    """The lab done, then a typo in named.conf.options and Apache stopped: nothing serves."""
    do_the_lab(vm)
    vm.sh("printf 'options { listen-on { any; }\\n' > /etc/bind/named.conf.options")
    vm.sh("rndc stop >/dev/null 2>&1 || true; apache2ctl stop >/dev/null 2>&1 || true")
    wait_for(vm, "! pidof named >/dev/null && ! pidof apache2 >/dev/null")
    vm.sh("named -u bind >/dev/null 2>&1 || true")  # refuses: the file does not parse


ALL = (
    "named_running",
    "named_listens_outside",
    "www_record",
    "mx_record",
    "shop_record",
    "serial_bumped",
    "web_running",
    "page_carries_token",
    "listing_off",
    "second_vhost",
)
ALL_PASS = dict.fromkeys(ALL, "pass")
DNS_FROM_OUTSIDE = ("www_record", "mx_record", "shop_record", "serial_bumped")


def _expect(**changes: str) -> dict[str, str]:
    unknown = set(changes) - set(ALL)
    assert not unknown, unknown
    return {**ALL_PASS, **changes}


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("complete", "Lab 7 done right", do_the_lab, ALL_PASS),
        Scenario(
            "untouched",
            "the VM as handed out: nothing done",
            lab_start,
            _expect(
                named_listens_outside="fail",
                **dict.fromkeys(DNS_FROM_OUTSIDE, "skipped"),
                page_carries_token="fail",
                listing_off="fail",
                second_vhost="fail",
            ),
        ),
        Scenario(
            "serial_not_bumped",
            "zone edited, but its serial not bumped and the zone not reloaded",
            serial_not_bumped,
            _expect(www_record="fail", mx_record="fail", shop_record="fail", serial_bumped="fail"),
        ),
        Scenario(
            "named_loopback_only",
            "named left listening on 127.0.0.1 only",
            lambda vm: do_the_lab(vm, listen_outside=False),
            _expect(named_listens_outside="fail", **dict.fromkeys(DNS_FROM_OUTSIDE, "skipped")),
        ),
        Scenario(
            "vhost_server_name_wrong",
            "the second virtual host's ServerName is not shop.ZONE",
            lambda vm: do_the_lab(vm, shop_server_name="shop.example.com"),
            _expect(second_vhost="fail"),
        ),
        Scenario(
            "services_stopped",
            "named refuses its broken named.conf.options, Apache stopped",
            services_stopped,
            _expect(
                named_running="fail",
                named_listens_outside="skipped",
                **dict.fromkeys(DNS_FROM_OUTSIDE, "skipped"),
                web_running="fail",
                page_carries_token="skipped",
                listing_off="skipped",
                second_vhost="skipped",
            ),
        ),
        Scenario(
            "listing_on",
            "directory listing left on",
            lambda vm: do_the_lab(vm, listing_off=False),
            _expect(listing_off="fail"),
        ),
    )
}
