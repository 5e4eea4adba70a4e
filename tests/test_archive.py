"""The evidence archive on its own: what it keeps and leaves out, how it reads back, and how a
replay answers (no VM: an archive is data)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grader import archive
from grader.archive import (
    ArchiveError,
    NeedsLiveVM,
    ReplayExecutor,
    ReplayOutside,
    RubricRecord,
    dumps,
    load,
    record,
    replay_vars,
)
from grader.errors import CommandTimeout
from grader.probes import Greeting, Pop3Login, Scan
from grader.results import Redactor
from grader.ssh import Completed

PASSWORD = "s3cret-pw"
KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----"


def recorded(commands=None, budget=None, monkeypatch=None) -> archive.Archive:
    if budget is not None:
        monkeypatch.setattr(archive, "ARCHIVE_LIMIT", budget)
    commands = commands or [
        (b"cat /etc/inetd.conf", Completed(0, b"pop3 stream tcp\n", b"", False)),
        (b"ss -ltn", CommandTimeout("no answer within 30 s")),
        (b"cat /bin/junk", Completed(1, b"\xff\xfe\x00\x01 junk", b"denied", True)),
        (b"cat /var/mail/bob", Completed(0, f"pw {PASSWORD}\n{KEY}\nbye".encode(), b"", False)),
    ]
    probes = [
        (("smtp", 25), Greeting(True, 220, "vm ESMTP Sendmail")),
        (("pop3-login", 110, "bob", PASSWORD), Pop3Login(True, 3, "+OK 3 messages (9 octets)")),
        (("scan", (25, 110)), Scan("nmap -p 25,110 198.18.0.10", {25: "open", 110: "closed"})),
    ]  # fmt: skip
    return record(
        commands=commands,
        probes=probes,
        student="alice",
        host="vm",
        address="198.18.0.10",
        host_key="SHA256:abc",
        graded_at="2026-11-25T10:00:00Z",
        rubric=RubricRecord(title="Lab 6", sha256="0" * 64),
        variables={"mail_user": "bob", "bob_password": PASSWORD},
        secret_names={"bob_password"},
        mask=Redactor([PASSWORD]),
        command_timeout=30,
    )


def written(tmp_path: Path, kept: archive.Archive) -> Path:
    path = tmp_path / "alice.evidence.json.gz"
    path.write_bytes(dumps(kept))
    return path


def test_round_trip_keeps_every_answer_byte_for_byte(tmp_path):
    kept = recorded()
    back = load(written(tmp_path, kept))
    assert back == kept and dumps(back) == dumps(kept)
    replay = ReplayExecutor(back)
    assert replay.exec(b"cat /etc/inetd.conf", 5) == Completed(0, b"pop3 stream tcp\n", b"", False)
    junk = replay.exec(b"cat /bin/junk", 5)
    assert junk == Completed(1, b"\xff\xfe\x00\x01 junk", b"denied", True)
    with pytest.raises(CommandTimeout, match="no answer within 30 s"):
        replay.exec(b"ss -ltn", 5)
    with pytest.raises(NeedsLiveVM, match="needs the live VM: `ls /` was not run"):
        replay.exec(b"ls /", 5)


def test_no_secret_and_no_private_key_is_kept(tmp_path):
    data = gzip.decompress(written(tmp_path, recorded()).read_bytes())
    assert PASSWORD.encode() not in data and b"MIIEowIBAAKCAQEA" not in data
    mailbox = ReplayExecutor(recorded()).exec(b"cat /var/mail/bob", 5).stdout
    assert mailbox == b"pw ****\n-----RSA PRIVATE KEY (left out by the grader)-----\nbye"
    body = recorded().body
    assert body.vars == {"mail_user": "bob"} and body.secret_vars == {"bob_password": True}


def test_probes_replay_and_the_pop3_password_is_told_by_its_digest():
    outside = ReplayOutside(recorded(), ports=(25, 110))
    assert outside.smtp_greeting(25) == Greeting(True, 220, "vm ESMTP Sendmail")
    assert outside.port_state(110) == "closed"
    assert outside.pop3_login("bob", PASSWORD).messages == 3
    assert outside.pop3_login("bob", archive.RECORDED_SECRET).ok
    with pytest.raises(NeedsLiveVM, match="another password"):
        ReplayOutside(recorded(), ports=(25, 110)).pop3_login("bob", "guess")
    with pytest.raises(NeedsLiveVM, match="POP3 greeting on port 110 was not made"):
        outside.pop3_greeting(110)
    with pytest.raises(NeedsLiveVM, match="port scan of 21"):
        ReplayOutside(recorded(), ports=(21,)).port_state(21)


def test_replay_variables_come_from_the_record_unless_given():
    kept = recorded()
    names = ["mail_user", "bob_password", "new_var"]
    assert replay_vars(kept, names, {}) == {
        "mail_user": "bob",
        "bob_password": archive.RECORDED_SECRET,
    }
    assert replay_vars(kept, names, {"mail_user": "carol"})["mail_user"] == "carol"


def test_past_the_size_limit_output_is_left_out_and_says_so(monkeypatch):
    big = Completed(0, b"x" * 600, b"", False)
    kept = recorded(
        [(b"a", big), (b"b", big), (b"c", Completed(0, b"small", b"", False))], 1000, monkeypatch
    )
    replay = ReplayExecutor(kept)
    assert replay.exec(b"a", 5).stdout == b"x" * 600
    with pytest.raises(
        NeedsLiveVM, match=r"not kept .*600 bytes of output, past the archive's limit"
    ):
        replay.exec(b"b", 5)
    assert replay.exec(b"c", 5).stdout == b"small"  # the budget left is still used


def _edit(path: Path, change) -> None:
    document = json.loads(gzip.decompress(path.read_bytes()))
    change(document)
    path.write_bytes(gzip.compress(json.dumps(document).encode()))


def test_an_edited_archive_is_refused(tmp_path):
    path = written(tmp_path, recorded())
    _edit(path, lambda d: d["body"]["commands"][0]["stdout"].update(text="pop3 stream tcp6\n"))
    with pytest.raises(ArchiveError, match="changed after grading"):
        load(path)


def test_an_archive_with_a_matching_checksum_but_a_bad_field_names_the_field(tmp_path):
    path = written(tmp_path, recorded())

    def bad(document):
        document["body"]["commands"][0]["exit"] = "zero"
        document["sha256"] = archive._checksum(document["body"])

    _edit(path, bad)
    with pytest.raises(ArchiveError, match=r"body\.commands\.0\.exit: "):
        load(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not gzip at all", "not a readable evidence archive"),
        (gzip.compress(b"{not json"), "bad JSON"),
        (gzip.compress(b'{"format": "something else"}'), "not an evidence archive of this grader"),
        (gzip.compress(b"[1, 2]"), "not an evidence archive of this grader"),
    ],
)
def test_what_is_not_an_archive_is_refused_by_name(tmp_path, content, message):
    path = tmp_path / "x.evidence.json.gz"
    path.write_bytes(content)
    with pytest.raises(ArchiveError, match=message) as caught:
        load(path)
    assert str(path) in str(caught.value)


def test_a_gzip_bomb_is_refused_without_reading_it_all(tmp_path, monkeypatch):
    monkeypatch.setattr(archive, "READ_LIMIT", 1000)
    path = tmp_path / "bomb.evidence.json.gz"
    path.write_bytes(gzip.compress(b"0" * 100_000))
    with pytest.raises(ArchiveError, match="larger than an evidence archive can be"):
        load(path)


def test_binary_junk_goes_as_base64_not_as_json_escapes():
    junk = bytes(range(32)) * 100
    assert archive.Blob.of(junk).base64 is not None and archive.Blob.of(junk).data == junk
    assert archive.Blob.of(b"plain text\n").text == "plain text\n"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_any_file_reads_as_an_archive_or_an_archive_error(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("fuzz") / "x.evidence.json.gz"
    for data in (content, gzip.compress(content)):
        path.write_bytes(data)
        with pytest.raises(ArchiveError):
            load(path)
