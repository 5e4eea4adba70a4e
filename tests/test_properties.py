"""Property tests: whatever a student's VM or a user's file holds, the parsers give an answer,
and the loaders of user input raise nothing but the documented InputError."""

from __future__ import annotations

import tempfile
from pathlib import Path

import tomlkit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checks.support.inetd import entries_for_port, parse_inetd_conf, parse_services
from checks.support.mbox import parse_mbox
from checks.support.vsftpd import DEFAULTS, boolean, parse_vsftpd_conf
from grader.base.errors import InputError
from grader.classrun.roster import load_roster
from grader.engine.catalog import built_in_rubric
from grader.engine.rubric import load_rubric
from grader.machine.prefetch import parse_batch

RUBRIC = load_rubric(built_in_rubric())
PROJECT = Path(__file__).resolve().parent.parent
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# text that looks like the files it stands for, not only noise
config_lines = st.lists(
    st.one_of(
        st.text(),
        st.sampled_from(["#", "#<off>#", "  #", "", "\t"]).flatmap(
            lambda lead: st.builds(
                lambda *f: lead + " ".join(f),
                st.sampled_from(
                    ["pop3", "ftp", "time", "telnet", "127.0.0.1:pop3", "110", "smtp", "x"]
                ),
                st.sampled_from(["stream", "dgram", "raw", "bogus"]),
                st.sampled_from(["tcp", "tcp6", "udp", "udp4", "rpc/tcp", ""]),
                st.text(max_size=8),
                st.text(max_size=8),
                st.text(max_size=20),
            )
        ),
        st.builds(
            lambda k, v: f"{k}={v}",
            st.sampled_from([*DEFAULTS, "listen", " anonymous_enable"]),
            st.sampled_from(["YES", "no", "True", "0", "1", "maybe", "", "NO "]),
        ),
    ),
    max_size=40,
).map("\n".join)


@SETTINGS
@given(config_lines, config_lines)
def test_inetd_conf_and_services_never_raise(conf, services_text):
    entries = parse_inetd_conf(conf)
    services = parse_services(services_text)
    for port in (21, 23, 25, 37, 110):
        for entry in entries_for_port(entries, services, port):
            assert entry.socket_type in ("stream", "dgram", "raw", "rdm", "seqpacket")


@SETTINGS
@given(config_lines)
def test_vsftpd_conf_never_raises_and_the_last_good_setting_wins(text):
    settings_ = parse_vsftpd_conf(text)
    for name, default in DEFAULTS.items():
        value = boolean(settings_, name)
        good = [
            s
            for s in settings_
            if s.name == name and s.value.upper() in ("YES", "TRUE", "1", "NO", "FALSE", "0")
        ]
        expected = good[-1].value.upper() in ("YES", "TRUE", "1") if good else default
        assert value.value == expected


@SETTINGS
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=200),
            st.sampled_from(
                [
                    b"From root@x Mon Jan 1 00:00:00 2026\n",
                    b"\n",
                    b"Subject: =?utf-8?q?=E2=80=9C?=\n",
                    b"Received: from x (localhost) by y (8.17/Submit) id 1\n",
                    b"Content-Type: multipart/mixed;"
                    b" boundary=b\n\n--b\nContent-Type: text/plain; charset=bogus\n\nhi\n--b--\n",
                    b"Return-Path: <>\n",
                    b"\xff\xfe\x00",
                ]
            ),
        ),
        max_size=30,
    ).map(b"".join)
)
def test_mbox_never_raises(data):
    for message in parse_mbox(data):
        assert isinstance(message.subject, str) and isinstance(message.body, str)
        message.locally_submitted, message.arrived_by_smtp, message.sender_user  # noqa: B018


@SETTINGS
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=40),
            st.sampled_from([b"\n@@lab-grader n0 1 0 2 0\n", b"\n@@lab-grader n0 end 1\n", b"ok"]),
        ),
        max_size=12,
    ).map(b"".join),
    st.integers(0, 5),
)
def test_batch_output_gives_framed_records_only(data, count):
    results = parse_batch(data, count, 1000, 5, "n0")  # never raises, whatever the bytes
    assert set(results) <= set(range(count))


@SETTINGS
@given(
    st.one_of(
        st.text(),
        st.lists(
            st.lists(
                st.sampled_from(
                    [
                        "student",
                        "host",
                        "port",
                        "user",
                        "bob_password",
                        "s1",
                        "vm",
                        "",
                        "22",
                        "x,y",
                        '"q"',
                        "99999",
                        "\ufeff",
                    ]
                ),
                max_size=6,
            ).map(",".join),
            max_size=8,
        ).map("\n".join),
    )
)
def test_a_roster_loads_or_is_refused_with_an_input_error(text):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "roster.csv"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            students = load_roster(path, RUBRIC)
        except InputError as e:
            assert str(e).startswith(str(path))  # it names the file
            return
        assert len({s.student for s in students}) == len(students)


toml_values = st.recursive(
    st.one_of(st.text(max_size=10), st.integers(-5, 30), st.floats(allow_nan=False), st.booleans()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "title",
                    "points",
                    "hint",
                    "depends",
                    "visibility",
                    "items",
                    "default",
                    "secret",
                    "x",
                ]
            ),
            inner,
            max_size=5,
        ),
    ),
    max_leaves=12,
)


@SETTINGS
@given(
    st.one_of(
        st.text(),
        st.dictionaries(
            st.sampled_from(
                ["title", "checks", "paths", "vars", "outside", "sections", "hidden_items", "extra"]
            ),
            toml_values,
            max_size=6,
        ).map(lambda d: tomlkit.dumps({**d, "checks": str(PROJECT / "checks")})),
    )
)
def test_a_rubric_loads_or_is_refused_with_an_input_error(text):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rubric.toml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            load_rubric(path)
        except InputError as e:
            assert str(e).startswith(str(path))
