"""Identity (grader.engine.identity): which machine answered a grading, and what students'
machines share, as pure functions of what the VMs said; no VM."""

from __future__ import annotations

from grader.engine.identity import (
    ANSWERED_BY_CLASSMATE,
    HOST_KEY,
    Sighting,
    answered_elsewhere,
    parse,
    shared,
)

NAMES = {HOST_KEY: "SSH host key", "unique:machine_id": "machine-id"}


def test_the_machines_own_words_are_read_bounded():
    said = (
        "ssh 198.18.0.1 50022 198.18.0.12 22\nname anglia\n"
        "addr 127.0.0.1/8\naddr 198.18.0.12/24\naddr fe80::1/64\nnoise\n"
    )
    assert parse(said) == {
        "ssh": ["198.18.0.1 50022 198.18.0.12 22"],
        "name": ["anglia"],
        "addresses": ["127.0.0.1", "198.18.0.12", "fe80::1"],
    }
    assert parse("ssh not four words\n" * 1000) == {}


def test_only_a_connection_relayed_by_the_address_graded_is_answered_elsewhere():
    own = {"addresses": ["127.0.0.1", "198.18.0.12"], "name": ["bname"]}
    # the VM's own address graded: direct
    direct = {**own, "ssh": ["198.18.0.1 5000 198.18.0.12 22"]}
    assert answered_elsewhere("198.18.0.12", direct) is None
    # a VirtualBox NAT port forward: graded at the host, reached from the NAT's gateway
    nat = {"addresses": ["10.0.2.15"], "ssh": ["10.0.2.2 5000 10.0.2.15 22"]}
    assert answered_elsewhere("127.0.0.1", nat) is None
    # a jump host: the VM's own address, from the jump host
    jump = {**own, "ssh": ["198.18.0.5 5000 198.18.0.12 22"]}
    assert answered_elsewhere("198.18.0.12", jump) is None
    # a forwarder at .11 passing the grader on to .12: the connection came from .11 itself
    relayed = {**own, "ssh": ["198.18.0.11 5000 198.18.0.12 22"]}
    flag = answered_elsewhere("198.18.0.11", relayed)
    assert flag is not None and flag.kind == "answered_elsewhere"
    assert "198.18.0.12" in flag.message and "bname" in flag.message
    assert answered_elsewhere("198.18.0.11", {}) is None  # a self-check: no SSH


def test_what_the_whole_class_shares_is_the_images_and_flags_nobody():
    image = "mid-of-the-image"
    class_ = [Sighting(f"s{n}", {"unique:machine_id": [image]}) for n in range(24)]
    # one real pair of clones among them: they share a host key nobody else has
    class_[3] = Sighting("s3", {"unique:machine_id": [image], HOST_KEY: ["SHA256:pair"]})
    class_[7] = Sighting("s7", {"unique:machine_id": [image], HOST_KEY: ["SHA256:pair"]},
                         "run 2, the VM as seen 2026-12-01T12:05:00Z")  # fmt: skip
    flags, notes = shared(class_, NAMES)
    assert notes == [
        "24 of 24 students' VMs share one machine-id: the image they were handed out gives "
        "it, so it says nothing of who copied whom (no flags)"
    ]
    assert set(flags) == {"s3", "s7"}
    (s3,) = flags["s3"]
    assert s3.kind == "shared_host_key" and s3.students == ("s7",)
    assert "SHA256:pair" in s3.message and "2026-12-01T12:05:00Z" in s3.message
    # two students of three sharing a value are a pair, not an image
    three = [Sighting(s, {"unique:machine_id": ["m"]}) for s in ("a", "b")] + [
        Sighting("c", {"unique:machine_id": ["other"]})
    ]
    assert set(shared(three, NAMES)[0]) == {"a", "b"}
    # a value listed as the image's flags nobody, however few share it
    assert shared(three, NAMES, image={"m"})[0] == {}


def test_a_grading_answered_by_a_classmates_machine_flags_both():
    ben = Sighting("ben", {"graded": ["198.18.0.12"], "reached": ["198.18.0.12"]}, "run 1")
    amy = Sighting("amy", {"graded": ["198.18.0.11"], "reached": ["198.18.0.12"]}, "run 2")
    flags, _ = shared([ben, amy], NAMES)
    assert [f.kind for f in flags["amy"]] == [ANSWERED_BY_CLASSMATE]
    assert flags["amy"][0].students == ("ben",) and "198.18.0.12" in flags["amy"][0].message
    assert flags["ben"][0].students == ("amy",)
    # NAT: everyone's VM has 10.0.2.15 and is reached there; nobody is graded there
    nat = [Sighting(s, {"graded": [f"10.1.0.{n}"], "reached": ["10.0.2.15"]})
           for n, s in enumerate("abcd")]  # fmt: skip
    assert shared(nat, NAMES)[0] == {}
