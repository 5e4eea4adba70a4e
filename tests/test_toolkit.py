"""The toolkit's readers, run for real on this machine (testinfra's local backend: the same
shell commands a VM runs): a bound is never a verdict, and a symlink is never followed."""

from __future__ import annotations

import pytest
import testinfra

from checks.support.remote import mailbox
from grader.engine.lab import Lab, Paths
from grader.toolkit import ReadInPart, read_file, read_lines

HOST = testinfra.get_host("local://")


def test_read_lines_finds_a_line_past_any_size_bound(tmp_path):
    path = tmp_path / "ftpusers"
    with path.open("w") as f:
        for n in range(600_000):  # 6.6 MB before the line that matters
            f.write(f"user{n:06d}\n")
        f.write("root\n")
    lines = read_lines(HOST, str(path), "root")
    assert lines is not None and lines.complete
    assert lines.numbered == ((600_001, "root"),)


def test_lines_past_the_bound_are_never_decided_on(tmp_path):
    path = tmp_path / "big.conf"
    path.write_text("".join(f"setting{n}=YES\n" for n in range(1000)))
    lines = read_lines(HOST, str(path), "^[^#]", limit=500)
    assert lines is not None and not lines.complete
    with pytest.raises(ReadInPart, match="read in part and this is not decided"):
        lines.numbered  # noqa: B018
    assert all(text.startswith("setting") for _, text in lines.found)  # no cut line kept


def test_a_file_read_in_part_is_not_text_to_decide_on(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 1000)
    content = read_file(HOST, str(path), limit=100)
    assert content is not None and not content.complete and content.part == "x" * 100
    with pytest.raises(ReadInPart, match="1000 bytes"):
        content.text  # noqa: B018
    assert read_file(HOST, str(tmp_path / "none")) is None
    (tmp_path / "link").symlink_to(path)
    with pytest.raises(AssertionError, match="is a symbolic link"):
        read_file(HOST, str(tmp_path / "link"))


def write_mailbox(path, spam: int, lab_mail: bool = True) -> None:
    with path.open("w") as f:
        for n in range(spam):
            f.write(f"From spam{n}@x Mon Nov 23 10:00:00 2026\nSubject: offer {n}\n\nbuy\n\n")
        if lab_mail:
            f.write(
                "From root@vm Mon Nov 23 11:00:00 2026\nSubject: Hello world\n\n"
                "Welcome to Computer Systems\n\n"
            )


def test_a_huge_mailbox_is_read_from_its_newest_messages_and_counted_whole(tmp_path):
    write_mailbox(tmp_path / "bob", 40_000)
    lab = Lab(Paths({"mail_spool": str(tmp_path)}), {})
    box = mailbox(HOST, lab, "bob", limit=64 * 1024)
    assert box.count == 40_001 and not box.complete
    assert box.messages[-1].subject == "Hello world" and box.messages[-1].index == 40_001
    assert "holds 40001 message(s)" in box.describe()
    with pytest.raises(ReadInPart, match="not decided: not a lost mark"):
        box.decide("a message that is not there")


def test_a_small_mailbox_is_read_whole(tmp_path):
    write_mailbox(tmp_path / "bob", 3)
    box = mailbox(HOST, Lab(Paths({"mail_spool": str(tmp_path)}), {}), "bob")
    assert box.complete and box.count == 4 and [m.index for m in box.messages] == [1, 2, 3, 4]
    box.decide("anything")  # read whole: the check may decide it is missing


def test_a_mailbox_the_mailer_put_elsewhere_is_read_there_and_said(tmp_path):
    spool, elsewhere = tmp_path / "spool", tmp_path / "mail"
    spool.mkdir(), elsewhere.mkdir()
    write_mailbox(elsewhere / "bob", 1)
    lab = Lab(Paths({"mail_spool": str(spool), "mail_spool_also": [str(elsewhere)]}), {})
    with pytest.warns(UserWarning, match=f"{spool}/bob does not exist; this VM's mailer"):
        box = mailbox(HOST, lab, "bob")
    assert box.path == f"{elsewhere}/bob" and box.count == 2
    (elsewhere / "bob").unlink()
    missing = mailbox(HOST, lab, "bob")  # in neither: said so, with both places
    assert not missing.exists and missing.path == f"{spool}/bob"
    assert missing.describe() == (
        f"{spool}/bob does not exist (nor does {elsewhere}/bob): no mail was delivered"
    )
