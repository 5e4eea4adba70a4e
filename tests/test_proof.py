"""The prover's parts that need no VM: a pack's own kinds of line mutant (grader.sim knows no
file's syntax), a scenarios module's LINE_KINDS checked when it is loaded, and the kill
matrix drawn from its record (grader.report.render.proof)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grader.base.errors import InputError
from grader.base.proving import MutantsProved, MutantTried, ScenariosProved
from grader.report.render import render
from grader.sim import Line, LineChange, derive
from grader.sim.facts import Facts
from grader.sim.kinds import derive_asked
from grader.sim.pack import load_scenarios

READ = 'p=%s; if [ -L "$p" ]; then echo symlink; ... dd if="$p" iflag=nofollow ...'
CHECKS = [{"id": "conf", "evidence": [{"source": READ % "/etc/app.conf"}]}]
CONF = "speed=fast\n#colour=red\n\nsize=big\n"


def test_the_grader_alone_knows_no_syntax_of_a_line():
    made = [m.id for m in derive(CHECKS, {"/etc/app.conf": "listen=YES\n#anon=NO\n"}.get)]
    assert "app.conf:1:commented" in made
    assert not [m for m in made if m.endswith((":flipped", ":overridden", ":uncommented"))]


def doubled(lines: list[Line]) -> list[LineChange]:
    """A kind of a pack's own: each setting said twice; each commented-out one made present."""
    return [
        LineChange(
            line.number,
            "doubled" if line.active else "present",
            f"said twice ({line.text})" if line.active else "made present",
            lambda q, n=line.number: f"sed -i '{n}p' -- {q}",
        )
        for line in lines
        if "=" in line.text
    ]


def test_a_packs_own_kind_makes_mutants_in_order_each_kept_and_undone_as_the_others():
    made = derive(CHECKS, {"/etc/app.conf": CONF}.get, kinds=[doubled])
    lines = [m.id for m in made if m.id.count(":") == 2]
    # the line made present first, then each active line: commented out, then the pack's own
    assert lines == [
        "app.conf:2:present",
        "app.conf:1:commented",
        "app.conf:1:doubled",
        "app.conf:4:commented",
        "app.conf:4:doubled",
    ]
    mutant = {m.id: m for m in made}["app.conf:4:doubled"]
    assert mutant.description == "/etc/app.conf line 4 said twice (size=big)"
    assert mutant.apply.endswith("&& sed -i '4p' -- /etc/app.conf")
    assert mutant.undo and mutant.backup and mutant.path == "/etc/app.conf"
    # a file too long to be edited by hand gets neither the generic line mutants nor the pack's
    big = "".join(f"k{n}=v\n" for n in range(61))
    assert not [m for m in derive(CHECKS, {"/etc/app.conf": big}.get, kinds=[doubled])
                if m.id.count(":") == 2]  # fmt: skip


def test_line_kinds_that_are_not_functions_are_refused_naming_the_scenarios_file(tmp_path):
    (tmp_path / "rubric.toml").write_text("")
    scenarios = tmp_path / "scenarios.py"
    scenarios.write_text("SCENARIOS = {}\nTOOLS = ()\nLINE_KINDS = ('flip',)\n")
    with pytest.raises(InputError, match=r"scenarios\.py: LINE_KINDS holds functions"):
        load_scenarios(tmp_path / "rubric.toml")
    scenarios.write_text("SCENARIOS = {}\nTOOLS = ()\nLINE_KINDS = (len,)\n")
    assert load_scenarios(tmp_path / "rubric.toml").line_kinds == (len,)


def tried(id: str, read_by: tuple[str, ...], **fields: object) -> MutantTried:
    given: dict = {"changed": {}, "error": None, "not_applied": None, **fields}
    return MutantTried(id, f"{id} done\x1b[2J", read_by, **given)


PROVED = MutantsProved(
    rubric=Path("/packs/tiny/rubric.toml"),
    reference="198.18.0.9",
    live=True,
    mutants=(
        tried("motd:removed", ("motd",), changed={"motd": "fail"}),
        tried("motd:1:commented", ("motd",)),
        tried("port22:stopped", ("banner",), changed=None, not_applied="sshd, the way in"),
    ),
    killed={"motd": ["motd:removed"], "banner": [], "sshd_running": []},
    survivors=["banner", "sshd_running"],
    not_proved={"banner": ["sshd, the way in"]},
    gaps=["motd:1:commented"],
    problems=[],
    originals_kept={},
    seconds=3.2,
)


def test_the_kill_matrix_is_drawn_from_its_record_with_what_a_vm_wrote_escaped():
    text = render("kill_matrix", PROVED, terminal=False, width=200)
    assert "Mutants of the VM at 198.18.0.9: which" in text  # the title, as wide as its table
    assert "\x1b" not in text and "motd:removed done\\u001b[2J" in text
    assert "1 mutant(s) changed no verdict" in text and "1 mutant(s) not applied:" in text
    assert "not proved: banner: every mutant of what it reads was not applied (sshd" in text
    assert "survives: sshd_running passes with every mutant (it reads nothing" in text
    assert text.endswith(
        "/packs/tiny/rubric.toml: 2 check(s) no mutant made fail (1 of them not proved "
        "here) (2 mutants in 3 s)\n"
    )
    shown = json.loads(render("kill_matrix_json", PROVED))
    assert list(shown) == ["rubric", "reference", "mutants", "killed", "survivors",
                           "not_proved", "gaps", "equivalent", "problems", "allowed",
                           "originals_kept"]  # fmt: skip
    assert shown["reference"] == "live:198.18.0.9"
    assert shown["not_proved"] == {"banner": "sshd, the way in"}
    assert shown["mutants"][2] == {
        "id": "port22:stopped", "description": "port22:stopped done\x1b[2J",
        "read_by": ["banner"], "changed": None, "error": None, "not_applied": "sshd, the way in",
        "equivalent": None,
    }  # fmt: skip


def test_a_scenarios_proof_is_drawn_from_its_record():
    found = ScenariosProved(Path("/p/rubric.toml"), ["x: fails in no scenario"], {"a": {}})
    assert render("proof", found) == (
        "  x: fails in no scenario\n/p/rubric.toml: 1 problem(s) on 1 scenarios\n"
    )
    assert json.loads(render("proof_json", found))["problems"] == ["x: fails in no scenario"]


def test_a_packs_own_kinds_of_what_a_check_asked_are_loaded_checked_and_used(tmp_path):
    (tmp_path / "rubric.toml").write_text("")
    scenarios = tmp_path / "scenarios.py"
    scenarios.write_text("SCENARIOS = {}\nTOOLS = ()\nKINDS = {'users': [len]}\n")
    with pytest.raises(InputError, match=r"scenarios\.py: KINDS: 'users' is none of read, "):
        load_scenarios(tmp_path / "rubric.toml")
    scenarios.write_text("SCENARIOS = {}\nTOOLS = ()\nKINDS = {'user': 'locked'}\n")
    with pytest.raises(InputError, match=r"KINDS\['user'\] is a list of functions"):
        load_scenarios(tmp_path / "rubric.toml")
    scenarios.write_text(
        "from grader.sim import Ground, Mutant\n\n"
        "def locked(ground: Ground):\n"
        "    name = ground.name\n"
        "    yield Mutant(f'user:{name}:locked', f'{name} locked', f'passwd -l {name}',\n"
        "                 f'passwd -u {name}', ground.read_by, touches=(f'user:{name}',))\n\n"
        "SCENARIOS = {}\nTOOLS = ()\nKINDS = {'user': [locked]}\n"
    )
    pack = load_scenarios(tmp_path / "rubric.toml")
    checks = [{"id": "bob", "evidence": [{"source": "id bob", "output": "[exit 0]\n"}]}]
    facts = Facts(lambda script: (1, "", ""))  # a VM that has no bob in its files
    made = {m.id: m for m in derive_asked(checks, facts, own=pack.kinds)}
    assert made["user:bob:locked"].read_by == ("bob",)
    assert made["user:bob:locked"].apply == "passwd -l bob"
