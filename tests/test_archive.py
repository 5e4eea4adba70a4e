"""The evidence archive on its own: what it keeps and leaves out, how it reads back, and how a
replay answers (no VM: an archive is data)."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.base.budget import DeadlinePassed
from grader.base.errors import CommandTimeout
from grader.evidence import archive
from grader.evidence.archive import (
    ArchiveError,
    NeedsLiveVM,
    Replay,
    ReplayExecutor,
    ReplayOutside,
    RubricRecord,
    dumps,
    load,
    record,
)
from grader.evidence.holes import NeedsSecret
from grader.machine.execution import Completed
from grader.probes import Registry
from grader.probes.mail import Greeting, Pop3Answer
from grader.probes.scan import Scan

PASSWORD = "s3cret-pw"
SSH_PASSWORD = "root-pw-9"
KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----"
NAMES = ["mail_user", "bob_password"]


def recorded(commands=None, budget=None, monkeypatch=None) -> archive.Archive:
    if budget is not None:
        monkeypatch.setattr(archive, "ARCHIVE_LIMIT", budget)
    commands = commands or [
        (b"cat /etc/inetd.conf", Completed(0, b"pop3 stream tcp\n", b"", False)),
        (b"ss -ltn", CommandTimeout("no answer within 30 s")),
        (b"cat /bin/junk", Completed(1, b"\xff\xfe\x00\x01 junk", b"denied", True)),
        (b"cat /var/mail/bob", Completed(0, f"pw {PASSWORD}\n{KEY}\nbye".encode(), b"", False)),
        (b"cat /etc/motd", Completed(0, f"root password: {SSH_PASSWORD}".encode(), b"", False)),
        (b"sleep 99", DeadlinePassed("not checked: the grading was interrupted")),
    ]
    probes = [
        ("smtp_greeting", [25], Greeting(True, 220, "vm ESMTP Sendmail")),
        ("pop3_login", ["bob", PASSWORD, 110], Pop3Answer(True, 3, "+OK 3 messages (9 octets)")),
        ("port_state", [25, 110], Scan("nmap 198.18.0.10", {"25": "open", "110": "closed"})),
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
        ssh_password=SSH_PASSWORD,
        command_timeout=30,
        cut_off=["late_check"],
    )


def replaying(kept: archive.Archive, given=None, ssh_password=None) -> Replay:
    return Replay(kept, NAMES, given or {}, ssh_password)


def written(tmp_path: Path, kept: archive.Archive) -> Path:
    path = tmp_path / "alice.evidence.json.gz"
    path.write_bytes(dumps(kept))
    return path


def test_round_trip_keeps_every_answer_byte_for_byte(tmp_path):
    kept = recorded()
    back = load(written(tmp_path, kept))
    assert back == kept and dumps(back) == dumps(kept)
    replay = ReplayExecutor(replaying(back))
    assert replay.exec(b"cat /etc/inetd.conf", 5) == Completed(0, b"pop3 stream tcp\n", b"", False)
    junk = replay.exec(b"cat /bin/junk", 5)
    assert junk == Completed(1, b"\xff\xfe\x00\x01 junk", b"denied", True)
    with pytest.raises(CommandTimeout, match="no answer within 30 s"):
        replay.exec(b"ss -ltn", 5)
    with pytest.raises(DeadlinePassed, match="interrupted"):  # as the live grading ended it
        replay.exec(b"sleep 99", 5)
    with pytest.raises(NeedsLiveVM, match="needs the live VM: `ls /` was not run"):
        replay.exec(b"ls /", 5)
    assert back.body.cut_off == ["late_check"]


def test_secrets_are_kept_out_and_put_back_only_when_given_again(tmp_path):
    data = gzip.decompress(written(tmp_path, recorded()).read_bytes())
    assert PASSWORD.encode() not in data and SSH_PASSWORD.encode() not in data
    body = recorded().body
    assert body.vars == {"mail_user": "bob"} and set(body.secrets) == {
        "bob_password",
        "ssh_password",
    }
    # without the secrets, an answer that held one is not replayed (never a different text)
    with pytest.raises(NeedsSecret, match="held the value of bob_password"):
        ReplayExecutor(replaying(recorded())).exec(b"cat /var/mail/bob", 5)
    with pytest.raises(NeedsSecret, match=r"the SSH password.*--password-env"):
        ReplayExecutor(replaying(recorded())).exec(b"cat /etc/motd", 5)
    # given again, byte for byte what the VM said: a private key included (it is the VM's
    # data, and masking it could change a verdict; people see it cut out)
    again = replaying(recorded(), {"bob_password": PASSWORD}, SSH_PASSWORD)
    mailbox = ReplayExecutor(again).exec(b"cat /var/mail/bob", 5).stdout
    assert mailbox == f"pw {PASSWORD}\n{KEY}\nbye".encode()
    motd = ReplayExecutor(again).exec(b"cat /etc/motd", 5).stdout
    assert motd == f"root password: {SSH_PASSWORD}".encode()
    # another value is not the secret: its holes stay unfilled
    with pytest.raises(NeedsSecret):
        ReplayExecutor(replaying(recorded(), {"bob_password": "guess"})).exec(
            b"cat /var/mail/bob", 5
        )


def test_a_secret_in_a_command_follows_the_variable():
    kept = recorded([(f"grep {PASSWORD} /etc/x".encode(), Completed(0, b"1", b"", False))])
    unknown = replaying(kept)  # not given: the variable reads as a stand-in, and so does the hole
    stand_in = unknown.variables["bob_password"]
    assert PASSWORD not in stand_in
    assert ReplayExecutor(unknown).exec(f"grep {stand_in} /etc/x".encode(), 5).stdout == b"1"
    known = replaying(kept, {"bob_password": PASSWORD})
    assert ReplayExecutor(known).exec(f"grep {PASSWORD} /etc/x".encode(), 5).stdout == b"1"
    other = replaying(kept, {"bob_password": "guess"})
    with pytest.raises(NeedsLiveVM):
        ReplayExecutor(other).exec(b"grep guess /etc/x", 5)


def test_probes_replay_and_the_pop3_password_follows_its_variable():
    kept = recorded()
    outside = ReplayOutside(replaying(kept), (25, 110), Registry())
    assert outside.smtp_greeting(25) == Greeting(True, 220, "vm ESMTP Sendmail")
    assert outside.port_state(110) == "closed"
    stand_in = outside.replay.variables["bob_password"]
    assert outside.pop3_login("bob", stand_in).messages == 3
    given = ReplayOutside(replaying(kept, {"bob_password": PASSWORD}), (25, 110), Registry())
    assert given.pop3_login("bob", PASSWORD).ok
    other = ReplayOutside(replaying(kept, {"bob_password": "guess"}), (25, 110), Registry())
    with pytest.raises(NeedsLiveVM, match="another value of bob_password"):
        other.pop3_login("bob", "guess")
    with pytest.raises(NeedsLiveVM, match=r"pop3_greeting\(110,\) was not made"):
        outside.pop3_greeting(110)
    with pytest.raises(NeedsLiveVM, match=r"port_state\(21,\)"):
        ReplayOutside(replaying(kept), (21,), Registry()).port_state(21)


def test_replay_variables_come_from_the_record_unless_given():
    kept = recorded()
    assert replaying(kept).variables["mail_user"] == "bob"
    assert replaying(kept, {"mail_user": "carol"}).variables["mail_user"] == "carol"
    assert "new_var" not in Replay(kept, [*NAMES, "new_var"], {}).variables


def test_past_the_size_limit_output_is_left_out_and_says_so(monkeypatch):
    big = Completed(0, b"x" * 600, b"", False)
    kept = recorded(
        [(b"a", big), (b"b", big), (b"c", Completed(0, b"small", b"", False))], 1000, monkeypatch
    )
    replay = ReplayExecutor(replaying(kept))
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
    assert archive.Blob.of(junk).base64 is not None and archive.Blob.of(junk).stored == junk
    assert archive.Blob.of(b"plain text\n").text == "plain text\n"


def test_deeply_nested_json_is_refused_by_name(tmp_path):
    body = b'{"x":' + b"[" * 5000 + b"]" * 5000 + b"}"  # too deep for Python's json to parse
    checksum = hashlib.sha256(body).hexdigest()  # what its canonical form would hash to
    document = b'{"format":"%s","sha256":"%s","body":%s}' % (
        archive.FORMAT.encode(),
        checksum.encode(),
        body,
    )
    path = tmp_path / "deep.evidence.json.gz"
    path.write_bytes(gzip.compress(document))
    with pytest.raises(ArchiveError, match="nested deeper than an evidence archive can be"):
        load(path)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64), st.dictionaries(st.sampled_from(["a", "b"]), st.text(min_size=1)))
def test_holes_put_back_exactly_what_was_cut(data, secrets):
    from grader.evidence import holes

    values = {name: value for name, value in secrets.items()}
    data = data + b"".join(v.encode() for v in values.values())
    cut, found = holes.cut(data, values)
    assert holes.fill(cut, found, values, "here") == data
    for value in values.values():
        if len(value.encode()) >= 4:
            assert value.encode() not in cut or value.encode() in holes.MARK.encode()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_any_file_reads_as_an_archive_or_an_archive_error(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("fuzz") / "x.evidence.json.gz"
    for data in (content, gzip.compress(content)):
        path.write_bytes(data)
        with pytest.raises(ArchiveError):
            load(path)
