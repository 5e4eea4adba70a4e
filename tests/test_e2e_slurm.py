"""A course graded in shards by a real job runner: a one-node Slurm (Debian's slurm-wlm and
munge, started here on ports of the test's own with a configuration it writes, stopped and
removed after) runs the array job `grade course shard-script --slurm` prints, whose tasks run
`grade course run lab6 --shard K/N` into one PostgreSQL book at once; then the README's plain
recipe (`grade --roster --shard K/N` in each task, then `grade merge`)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from grader.base.errors import CourseBusy
from grader.course.book import Book
from grader.course.lock import course_lock
from grader.engine.catalog import built_in_rubric
from scenarios import SCENARIOS
from tests.test_book import batch_lock_rules
from tests.test_e2e_course import grade, new_database, postgresql  # noqa: F401 (postgresql: a fixture)

pytestmark = pytest.mark.vm
DAEMONS = ("/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/sbin/munged", "/usr/bin/sbatch")
STUDENTS = {"ann": "complete", "bea": "untouched", "cid": "root_ftp_allowed"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def slurm() -> Iterator[dict[str, str]]:
    """A one-node Slurm of the test's own: munged on a socket of its own, slurmctld and
    slurmd on free ports, all state in a temporary folder; the environment to reach it."""
    missing = [d for d in DAEMONS if not Path(d).exists()]
    if missing:
        message = f"Slurm is not installed ({', '.join(missing)}): scripts/setup installs it"
        if os.environ.get("LABSIM_REQUIRED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    work = Path(tempfile.mkdtemp(prefix="labgrader-slurm-"))
    work.chmod(0o700)
    for sub in ("state", "spool", "log"):
        (work / sub).mkdir()
    key = work / "munge.key"
    key.write_bytes(secrets.token_bytes(1024))
    key.chmod(0o600)
    sock = work / "munge.sock"
    node = socket.gethostname().split(".")[0]
    conf = work / "slurm.conf"
    conf.write_text(
        f"""ClusterName=gradertest
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={sock}
CredType=cred/munge
StateSaveLocation={work}/state
SlurmdSpoolDir={work}/spool
SlurmctldPidFile={work}/slurmctld.pid
SlurmdPidFile={work}/slurmd.pid
SlurmctldLogFile={work}/log/slurmctld.log
SlurmdLogFile={work}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
MpiDefault=none
ReturnToService=2
MinJobAge=3600
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
SwitchType=switch/none
NodeName={node} NodeAddr=127.0.0.1 CPUs={os.cpu_count() or 1} State=UNKNOWN
PartitionName=grading Nodes=ALL Default=YES MaxTime=30 State=UP
"""
    )
    env = {**os.environ, "SLURM_CONF": str(conf)}

    def daemon(*command: str) -> None:
        subprocess.run(command, env=env, check=True, capture_output=True, timeout=60)

    try:
        daemon("/usr/sbin/munged", "-f", f"--socket={sock}", f"--key-file={key}",
               f"--log-file={work}/log/munged.log", f"--pid-file={work}/munged.pid",
               f"--seed-file={work}/munged.seed")  # fmt: skip
        daemon("/usr/sbin/slurmctld", "-f", str(conf), "-i")
        daemon("/usr/sbin/slurmd", "-f", str(conf))
        deadline = time.monotonic() + 60
        while True:
            state = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True,
                                   text=True, timeout=30).stdout.strip()  # fmt: skip
            if state == "idle":
                break
            assert time.monotonic() < deadline, (state, _logs(work))
            time.sleep(0.5)
        yield {"SLURM_CONF": str(conf)}
    finally:
        subprocess.run(["scontrol", "shutdown"], env=env, capture_output=True, timeout=60)
        for name in ("slurmd", "slurmctld"):
            _stop(work / f"{name}.pid")
        subprocess.run(["/usr/sbin/munged", "--stop", f"--socket={sock}"], capture_output=True,
                       timeout=60)  # fmt: skip
        _stop(work / "munged.pid")
        shutil.rmtree(work, ignore_errors=True)


def _logs(work: Path) -> str:
    return "\n".join(p.read_text()[-2000:] for p in sorted((work / "log").glob("*.log")))


def _stop(pid_file: Path) -> None:
    """Wait for the daemon of ``pid_file`` to end (10 s), then kill it."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, 9)


def students_in(folder: Path) -> list[str]:
    """The students a run's folder has a report of (its manifest, .run.json, is none)."""
    return [p.stem for p in folder.glob("*.json") if not p.name.startswith(".")]


def run_array(script: str, env: dict[str, str], folder: Path) -> list[str]:
    """sbatch a script, wait for every task of its array to end; the outputs of its tasks."""
    path = folder / "job.sh"
    path.write_text(script)
    submitted = subprocess.run(["sbatch", "--parsable", str(path)], env=env, capture_output=True,
                               text=True, timeout=60)  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    job = submitted.stdout.strip().split(";")[0]
    deadline = time.monotonic() + 600
    while subprocess.run(["squeue", "-h", "-j", job], env=env, capture_output=True, text=True,
                         timeout=30).stdout.strip():  # fmt: skip
        assert time.monotonic() < deadline, "the array job did not end in 10 minutes"
        time.sleep(1)
    shown = subprocess.run(["scontrol", "-o", "show", "job", job], env=env, capture_output=True,
                           text=True, timeout=30).stdout  # fmt: skip
    codes = [word.split("=")[1] for word in shown.split() if word.startswith("ExitCode=")]
    return codes


def test_a_course_graded_in_slurm_shards_into_one_postgresql_book(
    slurm, fleet, tmp_path, monkeypatch, plan_cache, request
):
    vms = fleet.boot([(f"s-{name}", SCENARIOS[s]) for name, s in STUDENTS.items()])
    course = tmp_path / "course"
    course.mkdir()
    (course / "course.toml").write_text(
        f"""title = "Shards 2026"
roster = "class.csv"

[[labs]]
id = "lab6"
rubric = "{built_in_rubric()}"
due = 2027-01-01T12:00:00+00:00
vars = {{ bob_password = {{ env = "LAB6_BOB_PW" }} }}
"""
    )
    rows = [f"{name},{vms[f's-{name}'].address},{fleet.identity}" for name in STUDENTS]
    (course / "class.csv").write_text("student,host,identity\n" + "\n".join(rows) + "\n")
    url = new_database(request.getfixturevalue("postgresql"), "shards")
    # what sbatch passes on to the tasks: the environment it runs in (the book's address too)
    env = {**os.environ, **slurm, "GRADER_DB": url, "LAB6_BOB_PW": fleet.password,
           "GRADER_KNOWN_HOSTS": str(tmp_path / "known_hosts"),
           "GRADER_CACHE_DIR": str(plan_cache)}  # fmt: skip
    monkeypatch.setenv("GRADER_DB", url)
    monkeypatch.chdir(course)

    code, script, err = grade("course", "shard-script", "lab6", "--slurm", "--shards", "2")
    assert code == 0, err
    assert "#SBATCH --array=1-2" in script and url not in script  # the address stays out
    codes = run_array(script, env, tmp_path)
    logs = "\n".join(p.read_text() for p in sorted(course.glob("slurm-*.out")))
    assert len(codes) == 2 and all(c in ("0:0", "1:0") for c in codes), (codes, logs)
    assert logs.count("Recorded in the gradebook as run") == 2, logs

    # every student graded exactly once, in one of the two shards of one batch
    runs = sorted((course / "runs").glob("lab6-run-*"))
    assert len(runs) == 2, runs
    graded = [name for run in runs for name in students_in(run)]
    assert sorted(graded) == sorted(STUDENTS), graded
    code, shown, err = grade("book", "show", "--format", "json")
    assert code == 0, err
    marks = {m["student"]: m for m in json.loads(shown)}
    for name, scenario in STUDENTS.items():
        folder = next(run for run in runs if (run / f"{name}.json").exists())
        report = json.loads((folder / f"{name}.json").read_text())
        assert {c["id"]: c["status"] for c in report["checks"]} == SCENARIOS[scenario].expected
        assert marks[name]["mark"] == pytest.approx(report["score"]), marks[name]
        code, history, _ = grade("book", "history", name)
        assert history.count(", run by ") == 1, history  # one grading, no double
        assert "(a shard of class grading slurm-" in history, history
        code, explained, _ = grade("book", "explain", name, "lab6")
        assert "(a shard of class grading slurm-" in explained and str(folder) in explained

    # past the due time, a cron's shard grades its slice of those now due, once
    for name in ("LAB6_BOB_PW", "GRADER_KNOWN_HOSTS", "GRADER_CACHE_DIR"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.setenv("GRADER_NOW", "2027-01-01T12:30:00+00:00")
    code, said, err = grade("course", "due", "--shard", "1/2", "--batch", "cron-1")
    assert code in (0, 1), said + err
    assert "lab6: grading 2 student(s) in shard 1/2 whose due time has passed: ann, cid" in said
    assert "(due of lab6 of batch cron-1)" in said
    (due,) = (course / "runs").glob("lab6-due-*")
    assert sorted(students_in(due)) == ["ann", "cid"]  # every 2nd from the 1st: bea is 2/2's
    code, said, _ = grade("course", "due", "--shard", "1/2", "--batch", "cron-2")
    assert "lab6: nobody to grade in shard 1/2" in said  # graded after their due time: done

    # the README's plain recipe: each task grades a slice into a folder, then grade merge
    out = tmp_path / "plain"
    plain = f"""#!/bin/sh
#SBATCH --array=1-2
#SBATCH --output={tmp_path}/plain-%a.out
exec {sys.executable} -m grader --roster {course}/class.csv --var-env bob_password=LAB6_BOB_PW \\
    --shard ${{SLURM_ARRAY_TASK_ID}}/2 --out {out}/shard-${{SLURM_ARRAY_TASK_ID}}
"""
    codes = run_array(plain, env, tmp_path)
    logs = "\n".join(p.read_text() for p in sorted(tmp_path.glob("plain-*.out")))
    assert len(codes) == 2 and all(c in ("0:0", "1:0") for c in codes), (codes, logs)
    code, said, err = grade("merge", str(out / "shard-1"), str(out / "shard-2"),
                            "--out", str(out / "class"))  # fmt: skip
    assert code == 0, said + err
    assert sorted(students_in(out / "class")) == sorted(STUDENTS)


def test_a_shard_task_gets_only_the_environment_it_needs(slurm, tmp_path, monkeypatch):
    """sbatch passes on the whole environment of whoever submits unless told otherwise: the
    script names what its tasks get (the book's address, the lab's secrets), and a database
    password or a secret of the course's that the task does not need stays behind."""
    from tests.test_shard_script import make_course

    course = make_course(tmp_path, "CS", folder="the course's 100% folder")  # sbatch unquotes
    monkeypatch.chdir(course)
    code, script, err = grade("course", "shard-script", "lab6", "--slurm", "--shards", "2")
    assert code == 0, err
    head = script[: script.index("\nexec ")]  # the task's own command: what it was given
    probe = f"{head}\nenv > {tmp_path}/env-$SLURM_ARRAY_TASK_ID\n"
    env = {**os.environ, **slurm, "GRADER_DB": "postgresql://grader@db.example/cs",
           "PGPASSFILE": "/srv/cs/pgpass", "LAB6_BOB_PW": "lab six", "AMY_SSH_PW": "amy's",
           "PGPASSWORD": "never in a task", "COURSE_SECRET": "never in a task"}  # fmt: skip
    codes = run_array(probe, env, tmp_path)
    assert codes == ["0:0", "0:0"], codes
    for task in (1, 2):
        given = dict(
            line.split("=", 1)
            for line in (tmp_path / f"env-{task}").read_text().splitlines()
            if "=" in line
        )
        for name in ("GRADER_DB", "PGPASSFILE", "LAB6_BOB_PW", "AMY_SSH_PW", "PATH"):
            assert given.get(name) == env[name], (name, given)
        assert "never in a task" not in given.values(), given
        assert given["SLURM_ARRAY_TASK_ID"] == str(task)
        assert given["PWD"] == str(course)  # --chdir, quoted
    assert len(list(course.glob("slurm-*_*.out"))) == 2  # --output, quoted, its % kept


def test_the_shards_of_one_batch_share_the_course_lock_on_postgresql(request):
    url = new_database(request.getfixturevalue("postgresql"), "locks")
    book = Book(url, by="ta")
    # the same book by another address: the lock is the database's, whatever the URL says
    other = Book(url.replace("127.0.0.1", "localhost"), by="tb")
    try:
        batch_lock_rules(book)
        with (
            course_lock(book, "grade course due", wait=0),
            pytest.raises(CourseBusy, match="grade course due by ta on "),
            course_lock(other, "grade course run lab6", wait=0),
        ):
            pass
        with book.engine.connect() as connection:  # each holder's row goes with its lock
            assert connection.execute(sa.text("SELECT count(*) FROM lock_holders")).scalar() == 0
    finally:
        book.close()
        other.close()
