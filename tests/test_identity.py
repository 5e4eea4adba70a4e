"""Identity (grader.engine.identity): which machine answered a grading, and what students'
machines share, as pure functions of what the VMs said; no VM."""

from __future__ import annotations

from types import SimpleNamespace

from grader.base.errors import CommandTimeout
from grader.engine.identity import (
    ANSWERED_BY_CLASSMATE,
    COMMAND,
    EARLIER_COMMAND,
    GRADED,
    HOST_KEY,
    MACHINE_BOOT,
    MACHINE_ID,
    REACHED,
    Sighting,
    answered_elsewhere,
    identify,
    parse,
    shared,
)
from grader.evidence.archive import NeedsLiveVM

NAMES = {HOST_KEY: "SSH host key", "unique:machine_id": "machine-id"}


def test_the_machines_own_words_are_read_bounded():
    said = (
        "ssh 198.18.0.1 50022 198.18.0.12 22\nname anglia\n"
        "addr 127.0.0.1/8\naddr 198.18.0.12/24\naddr fe80::1/64\nnoise\n"
        "machine-id 4c4c4544003510458030b7c04f4a3832\n"
        "boot-id 0f6a1b2c-3d4e-4f50-8a9b-0c1d2e3f4a5b\n"
    )
    found = parse(said)
    assert found == {
        "ssh": ["198.18.0.1 50022 198.18.0.12 22"],
        "name": ["anglia"],
        "addresses": ["127.0.0.1", "198.18.0.12", "fe80::1"],
        # digests, never the values (a machine-id is the machine's own, kept private)
        MACHINE_ID: [found[MACHINE_ID][0]],
        MACHINE_BOOT: [found[MACHINE_BOOT][0]],
    }
    assert "4c4c4544" not in str(found) and len(found[MACHINE_ID][0]) == 16
    rebooted = parse(said.replace("0f6a1b2c", "99999999"))
    assert rebooted[MACHINE_ID] == found[MACHINE_ID]  # the same machine...
    assert rebooted[MACHINE_BOOT] != found[MACHINE_BOOT]  # ...booted again
    assert parse("ssh not four words\n" * 1000) == {}
    # what is not a machine-id or a boot id is not taken for one
    assert parse("machine-id $(reboot)\nboot-id \nmachine-id \n") == {}
    assert MACHINE_BOOT not in parse("machine-id 4c4c4544003510458030b7c04f4a3832\n")


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
    # amy's VM at .11 passed the grader on to ben's machine: his host key answered
    ben = Sighting("ben", {"graded": ["198.18.0.12"], "reached": ["198.18.0.12"],
                           HOST_KEY: ["SHA256:ben"]}, "run 1")  # fmt: skip
    amy = Sighting("amy", {"graded": ["198.18.0.11"], "reached": ["198.18.0.12"],
                           HOST_KEY: ["SHA256:ben"]}, "run 2")  # fmt: skip
    flags, _ = shared([ben, amy], NAMES)
    assert {f.kind for f in flags["amy"]} == {ANSWERED_BY_CLASSMATE, "shared_host_key"}
    (to_amy,) = [f for f in flags["amy"] if f.kind == ANSWERED_BY_CLASSMATE]
    assert to_amy.students == ("ben",) and "198.18.0.12" in to_amy.message
    (to_ben,) = [f for f in flags["ben"] if f.kind == ANSWERED_BY_CLASSMATE]
    assert to_ben.students == ("amy",)
    # NAT: everyone's VM has 10.0.2.15 and is reached there; nobody is graded there
    nat = [Sighting(s, {"graded": [f"10.1.0.{n}"], "reached": ["10.0.2.15"]})
           for n, s in enumerate("abcd")]  # fmt: skip
    assert shared(nat, NAMES)[0] == {}


# ----- the machine, not an address at another time -----------------------------------------


def box(key: str, machine_id: str, boot: str) -> dict[str, list[str]]:
    """What a grading records of the machine that answered: its host key, its machine-id,
    and its machine-id with its boot id (digests, in a report: values here, for reading)."""
    return {HOST_KEY: [key], MACHINE_ID: [machine_id], MACHINE_BOOT: [f"{machine_id}/{boot}"]}


AMY_BOX = box("SHA256:amy", "mid-amy", "boot-1")
BEN_BOX = box("SHA256:ben", "mid-ben", "boot-2")


def test_an_address_dhcp_gave_a_classmate_later_flags_nobody():
    # amy is graded at .11; days later DHCP has given .11 to ben's VM, and ben is graded there
    amy = Sighting("amy", {GRADED: [".11"], REACHED: [".11"], **AMY_BOX}, "run 1")
    ben = Sighting("ben", {GRADED: [".11"], REACHED: [".11"], **BEN_BOX}, "run 2")
    assert shared([amy, ben], NAMES)[0] == {}
    # and the other way round: amy graded at .12 where ben once was
    ben_then = Sighting("ben", {GRADED: [".12"], REACHED: [".12"], **BEN_BOX}, "run 1")
    amy_now = Sighting("amy", {GRADED: [".12"], REACHED: [".12"], **AMY_BOX}, "run 3")
    assert shared([ben_then, amy, ben, amy_now], NAMES)[0] == {}
    # gradings recorded before machine-ids were asked: the host keys tell the machines apart
    old = [Sighting(s.student, {k: v for k, v in s.values.items() if k == HOST_KEY or
                                k in (GRADED, REACHED)}, s.where) for s in (amy, ben)]  # fmt: skip
    assert shared(old, NAMES)[0] == {}


def test_one_machine_answering_for_two_students_is_still_flagged_at_any_address():
    amy = Sighting("amy", {GRADED: [".12"], REACHED: [".12"], **AMY_BOX}, "run 1")
    # ben's VM at .11 passes the grader on to amy's machine: her host key answers
    relayed = Sighting("ben", {GRADED: [".11"], REACHED: [".12"], **AMY_BOX}, "run 2")
    flags, _ = shared([amy, relayed], NAMES)
    assert {f.kind for f in flags["ben"]} == {ANSWERED_BY_CLASSMATE, "shared_host_key"}
    assert {f.kind for f in flags["amy"]} == {ANSWERED_BY_CLASSMATE, "shared_host_key"}
    # a relay that logs in itself (its own sshd, its own host key) and runs the grader's
    # commands on amy's machine: her machine-id with her boot id say which machine answered
    own_key = Sighting("ben", {GRADED: [".11"], REACHED: [".12"],
                               **box("SHA256:ben", "mid-amy", "boot-1")}, "run 2")  # fmt: skip
    flags, _ = shared([amy, own_key], NAMES)
    assert [f.kind for f in flags["ben"]] == [ANSWERED_BY_CLASSMATE]
    assert flags["ben"][0].students == ("amy",) and flags["amy"][0].students == ("ben",)
    # one VM on two rows of the roster, graded at one address for both
    twice = Sighting("ben", {GRADED: [".12"], REACHED: [".12"], **AMY_BOX}, "run 2")
    assert ANSWERED_BY_CLASSMATE in {f.kind for f in shared([amy, twice], NAMES)[0]["ben"]}


def test_what_the_image_gives_everyone_does_not_make_two_machines_one():
    # a handed-out image with its host key baked in, and one machine-id: every VM shows them;
    # the boot id is each running machine's own
    class_ = [
        Sighting(s, {GRADED: [f".{n}"], REACHED: [f".{n}"], **box("SHA256:image", "mid", s)})
        for n, s in enumerate(("cat", "dan", "eve", "fay"), 20)
    ]
    # DHCP gives cat's .20 to ben, whose VM is another copy of the image
    ben = Sighting("ben", {GRADED: [".20"], REACHED: [".20"], **box("SHA256:image", "mid", "ben")},
                   "run 2")  # fmt: skip
    flags, notes = shared([*class_, ben], NAMES)
    assert flags == {} and notes  # the host key: a note for the class, no flag
    # ben's VM at .21 relays to cat's machine: the same running machine (machine-id and boot)
    relay = Sighting("ben", {GRADED: [".21"], REACHED: [".20"],
                             **box("SHA256:image", "mid", "cat")}, "run 2")  # fmt: skip
    flags, _ = shared([*class_, relay], NAMES)
    assert [f.kind for f in flags["ben"]] == [ANSWERED_BY_CLASSMATE]
    assert flags["ben"][0].students == ("cat",)


def test_a_grading_that_says_nothing_of_its_machine_is_no_evidence_of_another():
    # no host key, no machine-id (a self-check, an archive from before): an address alone
    # at another time says nothing of which machine answered
    amy = Sighting("amy", {GRADED: [".11"], REACHED: [".11"]}, "run 1")
    ben = Sighting("ben", {GRADED: [".11"], REACHED: [".11"]}, "run 2")
    assert shared([amy, ben], NAMES)[0] == {}


class Recorded:
    """An evidence archive's answers, as a regrade replays them: a command it has no answer to
    needs the live VM."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers

    def run(self, command: str) -> SimpleNamespace:
        if command not in self.answers:
            raise NeedsLiveVM(f"{command[:20]} was not run when the VM was graded")
        return SimpleNamespace(stdout=self.answers[command])


def test_a_regrade_of_a_grading_from_before_the_machine_id_was_asked_reads_what_it_recorded():
    said = "ssh 198.18.0.1 50022 198.18.0.12 22\nname anglia\naddr 198.18.0.12/24\n"
    assert identify(Recorded({EARLIER_COMMAND: said})) == parse(said)
    now = said + "machine-id 4c4c4544003510458030b7c04f4a3832\n"
    assert MACHINE_ID in identify(Recorded({COMMAND: now, EARLIER_COMMAND: said}))
    assert identify(Recorded({})) == {}  # asked neither: nothing known, no flag

    class Slow:
        asked = 0

        def run(self, command: str) -> None:
            self.asked += 1
            raise CommandTimeout("timed out")

    slow = Slow()
    assert identify(slow) == {} and slow.asked == 1  # a live VM too slow: not asked again
