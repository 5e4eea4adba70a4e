"""Lab 7's simulated scenarios: a student's VM after the lab done right, as handed out, and with
each of the common mistakes. Each VM is named after its student: the zone and the word its
pages carry are that student's variant, derived by the rubric itself (with COURSE_SECRET).

Run with the lab simulator (`grade sim up --lab lab7`, `grade prove --lab lab7`), as root:
real BIND 9 (named) and Apache 2 from Debian's packages, in the same namespace VMs as Lab 6's.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from grader.sim import VM, Mutant, Scenario, rubric_variables, wait_for

HERE = Path(__file__).resolve().parent
RUBRIC = HERE / "rubric.toml"
COURSE_SECRET = "lab7-simulator-secret"  # the course secret the simulated class is graded with
GRADING_VARS = {"course_secret": COURSE_SECRET}  # what `grade prove` grades with
TOOLS = ("named", "named-checkzone", "rndc", "apache2ctl")  # what the VMs run, besides sshd
INITIAL_SERIAL = "2026010100"
SERIAL = "2026112801"


@dataclass(frozen=True)
class Variant:
    zone: str
    token: str


def variant(student: str) -> Variant:
    """The student's variant, as the rubric derives it."""
    values = rubric_variables(RUBRIC, {"course_secret": COURSE_SECRET}, student=student)
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
#: The lab done right in another style: $ORIGIN, and every name relative to it
RELATIVE_RECORDS = """$ORIGIN {zone}.
www  IN A   {address}
mail IN A   {address}
@    IN MX  10 mail
shop IN CNAME www
"""
#: The most common BIND mistake: a name written without its trailing dot (the zone is added)
MX_NO_DOT = RECORDS.replace("10 mail.{zone}.", "10 mail.{zone}")
MX_PREFERENCE_20 = RECORDS.replace("MX  10 ", "MX  20 ")
CNAME_NO_DOT = RECORDS.replace("CNAME www.{zone}.", "CNAME www.{zone}")
SYNTAX_ERROR = RECORDS + "oops IN A   not-an-address\n"
OPTIONS = """options {{
    directory "/var/cache/bind";
    listen-on {{ {listen}; }};
    listen-on-v6 {{ {listen_v6}; }};
    recursion no;
    allow-query {{ {allow}; }};
    dnssec-validation no;
}};
"""
SHOP_SITE = """<VirtualHost *:80>
    ServerName {server_name}
    DocumentRoot /var/www/shop
</VirtualHost>
"""


def options(listen: str = "any", listen_v6: str = "none", allow: str = "any") -> str:
    return OPTIONS.format(listen=listen, listen_v6=listen_v6, allow=allow)


def lab_start(vm: VM) -> None:
    """The VM as handed out: named serving an empty zone on 127.0.0.1 only, Apache's default
    site with a folder it lists."""
    mine = variant(vm.name)
    zone_file = f"/etc/bind/db.{mine.zone}"
    vm.sh(
        f"printf '%s' {shlex.quote(options(listen='127.0.0.1'))} "
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


def restart_named(vm: VM, waited: str) -> None:
    vm.sh("rndc stop && while pidof named >/dev/null; do sleep 0.1; done; named -u bind")
    wait_for(vm, waited)


def do_the_lab(
    vm: VM,
    *,
    records: str = RECORDS,
    serial: str = SERIAL,
    reload_zone: bool = True,
    named_options: str | None = None,
    zone_file: str | None = None,
    shop_server_name: str | None = None,
    listing_off: bool = True,
) -> None:
    """Lab 7 done by a student, with an optional mistake (or an unusual way of doing it right)
    given by its keywords: the zone's records and serial, named's options (default: listening
    on any address), where the zone file is kept, the shop site's name, the listing."""
    lab_start(vm)
    mine = variant(vm.name)
    handed_out = f"/etc/bind/db.{mine.zone}"
    # Exercise 1: the records, the serial, the reload, listening outside
    vm.sh(
        f"printf '%s' {shlex.quote(records.format(zone=mine.zone, address=vm.address))} "
        f">> {handed_out}"
    )
    vm.sh(f"sed -i 's/{INITIAL_SERIAL}/{serial}/' {handed_out}")
    if zone_file is not None:  # kept somewhere else, and named.conf.local says where
        vm.sh(
            f"mkdir -p {shlex.quote(zone_file.rsplit('/', 1)[0])} && "
            f"mv {handed_out} {shlex.quote(zone_file)} && "
            f"chown -R bind:bind {shlex.quote(zone_file.rsplit('/', 1)[0])} && "
            f'printf \'zone "%s" {{ type master; file "%s"; }};\\n\' {mine.zone} {zone_file} '
            "> /etc/bind/named.conf.local"
        )
    chosen = named_options if named_options is not None else options()
    vm.sh(f"printf '%s' {shlex.quote(chosen)} > /etc/bind/named.conf.options")
    if reload_zone:
        restart_named(vm, "ss -Hlun 'sport = :53' | grep -q :53")  # a restart loads it all
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


def zone_syntax_error(vm: VM) -> None:
    """The records added and the serial bumped, but the zone file has a syntax error: named
    keeps serving the zone as it was when it last loaded."""
    lab_start(vm)
    mine = variant(vm.name)
    zone_file = f"/etc/bind/db.{mine.zone}"
    vm.sh(f"printf '%s' {shlex.quote(options())} > /etc/bind/named.conf.options")
    restart_named(vm, f"ss -Hlun 'sport = :53' | grep -q {vm.address}")
    vm.sh(
        f"printf '%s' {shlex.quote(SYNTAX_ERROR.format(zone=mine.zone, address=vm.address))} "
        f">> {zone_file} && sed -i 's/{INITIAL_SERIAL}/{SERIAL}/' {zone_file} && "
        f"(rndc reload {mine.zone} >/dev/null 2>&1 || true)"
    )
    do_the_web(vm)


def do_the_web(vm: VM, *, listing: str = "off") -> None:
    """Exercise 2. ``listing``: off (Options -Indexes), module (a2dismod autoindex), hidden
    (an empty index.html in the folder), removed (the folder deleted), on."""
    mine = variant(vm.name)
    vm.sh(f"printf '<h1>Welcome</h1><p>{mine.token}</p>\\n' > /var/www/html/index.html")
    if listing == "off":
        vm.sh(
            "sed -i 's/Options Indexes FollowSymLinks/Options -Indexes +FollowSymLinks/' "
            "/etc/apache2/apache2.conf"
        )
    elif listing == "module":
        vm.sh("a2dismod -q -f autoindex >/dev/null")
    elif listing == "hidden":
        vm.sh(": > /var/www/html/files/index.html")
    elif listing == "removed":
        vm.sh("rm -rf /var/www/html/files")
    vm.sh(
        f"mkdir -p /var/www/shop && printf '<h1>shop</h1><p>{mine.token}</p>\\n' "
        "> /var/www/shop/index.html && "
        f"printf '%s' {shlex.quote(SHOP_SITE.format(server_name='shop.' + mine.zone))} "
        "> /etc/apache2/sites-available/shop.conf && a2ensite -q shop >/dev/null && "
        "apache2ctl graceful"
    )
    wait_for(vm, "ss -Hltn 'sport = :80' | grep -q LISTEN")


def with_web(listing: str, **dns: object):  # type: ignore[no-untyped-def]
    """The lab done (``dns``: do_the_lab's keywords for Exercise 1), Exercise 2 as ``listing``."""

    def build(vm: VM) -> None:
        do_the_lab(vm, **dns, listing_off=False)  # type: ignore[arg-type]
        # undo the default site's page and the shop site, then do Exercise 2 this way
        vm.sh("a2dissite -q shop >/dev/null || true")
        do_the_web(vm, listing=listing)

    return build


def zone_elsewhere(vm: VM) -> None:
    """Done right, the zone file kept in a folder of its own."""
    do_the_lab(vm, zone_file=f"/var/lib/bind/zones/{variant(vm.name).zone}.zone")


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


#: The zone file of the VM's own variant, found in the shell (a mutant's script is one for all)
_ZONE = "z=$(ls /etc/bind/db.*.lab7.test | head -n 1); "
_RELOAD = " && rndc reload >/dev/null && sleep 2"  # named loads the zone in the background
_BUMP = f" && sed -i 's/{SERIAL}/{int(SERIAL) + 1}/' \"$z\""


def _own(key: str, what: str, script: str, *checks: str) -> Mutant:
    return Mutant(key, what, script, None, checks)


#: Mutants of Lab 7's own kinds (`grade prove --mutants`): its checks ask named and Apache from
#: outside, so the mutants derived from what they read stop the daemons; these change what
#: they serve, one record or setting at a time, each on a VM of its own
MUTANTS = (
    _own("zone:www-address", "www's address changed (serial bumped, zone reloaded)",
         _ZONE + "sed -i -E 's/^(www +IN A +).*/\\1198.51.100.7/' \"$z\"" + _BUMP + _RELOAD,
         "www_record"),
    _own("zone:mx-preference", "the MX record's preference 10 made 20 (bumped, reloaded)",
         _ZONE + "sed -i 's/MX  10 /MX  20 /' \"$z\"" + _BUMP + _RELOAD, "mx_record"),
    _own("zone:shop-removed", "the shop record removed (bumped, reloaded)",
         _ZONE + "sed -i '/^shop /d' \"$z\"" + _BUMP + _RELOAD, "shop_record"),
    _own("zone:serial-back", "the serial set back to the handed-out one (zone reloaded)",
         _ZONE + f"sed -i 's/{SERIAL}/{INITIAL_SERIAL}/' \"$z\"" + _RELOAD, "serial_bumped"),
    _own("named:loopback", "named made to listen on 127.0.0.1 only (reconfigured)",
         "sed -i 's/listen-on { any; }/listen-on { 127.0.0.1; }/' "
         "/etc/bind/named.conf.options && rndc reconfig >/dev/null && sleep 2",
         "named_listens_outside"),
    _own("web:token", "the student's token taken off the page",
         "sed -i 's/<p>[^<]*<\\/p>//' /var/www/html/index.html", "page_carries_token"),
    _own("web:listing", "directory listings back on (Options Indexes)",
         "sed -i 's/Options -Indexes +FollowSymLinks/Options Indexes FollowSymLinks/' "
         "/etc/apache2/apache2.conf && apache2ctl graceful && sleep 2", "listing_off"),
    _own("web:shop-off", "the shop site disabled", "a2dissite -q shop >/dev/null && "
         "apache2ctl graceful && sleep 2", "second_vhost"),
)  # fmt: skip

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
            lambda vm: do_the_lab(vm, named_options=options(listen="127.0.0.1")),
            _expect(named_listens_outside="fail", **dict.fromkeys(DNS_FROM_OUTSIDE, "skipped")),
        ),
        Scenario(
            "stock_listen_v6",
            "Debian's stock listen-on-v6 { any; } kept, listen-on 127.0.0.1: loopback and "
            "link-local only",
            lambda vm: do_the_lab(vm, named_options=options(listen="127.0.0.1", listen_v6="any")),
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
        # done right, in unusual ways
        Scenario(
            "origin_relative",
            "done right with $ORIGIN and relative names",
            lambda vm: do_the_lab(vm, records=RELATIVE_RECORDS),
            ALL_PASS,
        ),
        Scenario(
            "zone_elsewhere",
            "done right, the zone file kept in /var/lib/bind/zones (named.conf.local says so)",
            zone_elsewhere,
            ALL_PASS,
        ),
        Scenario(
            "autoindex_off",
            "done right, listing turned off by disabling mod_autoindex",
            with_web("module"),
            ALL_PASS,
        ),
        # the mistakes students make
        Scenario(
            "mx_no_trailing_dot",
            "the MX names mail.ZONE without its trailing dot (mail.ZONE.ZONE.)",
            lambda vm: do_the_lab(vm, records=MX_NO_DOT),
            _expect(mx_record="fail"),
        ),
        Scenario(
            "mx_preference_20",
            "the MX has preference 20, not 10",
            lambda vm: do_the_lab(vm, records=MX_PREFERENCE_20),
            _expect(mx_record="fail"),
        ),
        Scenario(
            "cname_nowhere",
            "shop is a CNAME to www.ZONE without its trailing dot: to a name that does not exist",
            lambda vm: do_the_lab(vm, records=CNAME_NO_DOT),
            _expect(shop_record="fail"),
        ),
        Scenario(
            "serial_down",
            "the serial made lower than the one handed out",
            lambda vm: do_the_lab(vm, serial="2025010100"),
            _expect(serial_bumped="fail"),
        ),
        Scenario(
            "allow_query_localhost",
            "allow-query { localhost; }: named answers the VM only",
            lambda vm: do_the_lab(vm, named_options=options(allow="localhost")),
            _expect(**dict.fromkeys(DNS_FROM_OUTSIDE, "fail")),
        ),
        Scenario(
            "zone_syntax_error",
            "records added and serial bumped in a zone file that does not load",
            zone_syntax_error,
            _expect(**dict.fromkeys(DNS_FROM_OUTSIDE, "fail")),
        ),
        Scenario(
            "listing_hidden",
            "listing left on, the folder hidden by an empty index.html",
            with_web("hidden"),
            _expect(listing_off="fail"),
        ),
        Scenario(
            "listing_folder_removed",
            "listing left on, the folder removed",
            with_web("removed"),
            _expect(listing_off="fail"),
        ),
    )
}
