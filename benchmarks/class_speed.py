"""How fast a class is graded, against the one-exec-per-host floor and plain pytest-testinfra.

    sudo .venv/bin/python -m benchmarks.class_speed --vms 24 --plain
    sudo .venv/bin/python -m benchmarks.class_speed --vms 100

Boots N simulated VMs (the complete scenario), then measures, on the same VMs in one run:

* floor: all hosts at once, one SSH exec per host gathering every file, socket and process list
  the checks read, one SMTP and one POP3 greeting per host, one nmap over all hosts;
* grade --roster, cold (nothing learned yet: one host first, then the rest) and warm (the
  commands learned: one round trip per host), and --no-prefetch (one round trip per command);
* with --plain: plain `pytest --hosts=paramiko://...` of checks/, sequential and -n 8.

It checks that every way gives the same marks, and prints wall time, the ratio to the floor, and
the peak memory (RSS) of each command. Sendmail allows 10 connections per client in 10 minutes;
this makes at most 6 to each VM.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import poplib
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import paramiko

from grader.report.render.summary_csv import LEADING, TRAILING
from grader.sim import Fleet, missing_requirements
from scenarios import SCENARIOS

PROJECT = Path(__file__).resolve().parents[1]
GATHER = (
    "cat /etc/inetd.conf /etc/services /etc/vsftpd.conf /etc/ftpusers /var/mail/bob "
    "/var/mail/root; ss --numeric --listening; ps -e -ww -o pid=,ppid=,comm=,args=; "
    "ls -1 -A /var/spool/mqueue /var/spool/mqueue-client; "
    "find -H /var/spool/mail -maxdepth 1 -type f -perm /o=rw"
)
PORTS = "21,23,25,37,110"
SUMMARY_COLUMNS = {*LEADING, *TRAILING}  # the columns of summary.csv that are not checks


#: Runs a command (argv[2:]) and writes its peak RSS in KiB to argv[1]: a small process, so the
#: peak is the command's own (a process forked by this one starts with this one's pages, which
#: its ru_maxrss would count)
MEASURED = (
    "import os, subprocess, sys; p = subprocess.Popen(sys.argv[2:]); "
    "_, status, usage = os.wait4(p.pid, 0); "
    "open(sys.argv[1], 'w').write(str(usage.ru_maxrss)); "
    "sys.exit(os.waitstatus_to_exitcode(status))"
)


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int]:
    """Run a command; (wall seconds, peak RSS in MB of its process tree's largest, status)."""
    with tempfile.NamedTemporaryFile("r") as peak:
        started = time.monotonic()
        status = subprocess.run(
            [sys.executable, "-c", MEASURED, peak.name, *command],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False,
        ).returncode  # fmt: skip
        wall = time.monotonic() - started
        return wall, int(peak.read() or 0) / 1024, status


def floor(addresses: list[str], identity: Path) -> float:
    def one(address: str) -> None:
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        client.connect(
            address,
            username="root",
            key_filename=str(identity),
            look_for_keys=False,
            allow_agent=False,
            timeout=10,
        )
        _, stdout, _ = client.exec_command(GATHER)
        stdout.read()
        client.close()
        with smtplib.SMTP(address, 25, local_hostname="floor", timeout=15):
            pass
        poplib.POP3(address, 110, timeout=15).quit()

    started = time.monotonic()
    with ThreadPoolExecutor(len(addresses) + 1) as pool:
        scan = pool.submit(
            subprocess.run,
            ["nmap", "-sS", "-Pn", "-n", "-p", PORTS, *addresses],
            capture_output=True,
            check=True,
        )
        list(pool.map(one, addresses))
        scan.result()
    return time.monotonic() - started


def round_trips(folder: Path, students: Iterable[str]) -> float:
    """The round trips to a VM (SSH execs) of a run's gradings, on average."""
    counts = [json.loads((folder / f"{s}.json").read_text())["round_trips"] for s in students]
    return sum(counts) / len(counts) if counts else 0.0


def marks_of_summary(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def marks_of_junit(path: Path, students: dict[str, str]) -> dict[str, dict[str, bool]]:
    """Plain pytest's verdicts per student: {student: {check: passed}}."""
    by_address = {address: student for student, address in students.items()}
    marks: dict[str, dict[str, bool]] = {}
    for case in ET.parse(path).iter("testcase"):
        name = case.get("name", "")
        check = name.split("[")[0].removeprefix("test_")
        spec = name[name.index("[") + 1 : -1]  # e.g. paramiko://root@198.18.0.10
        address = spec.split("://")[-1].split("@")[-1].split("?")[0]
        passed = not any(child.tag in ("failure", "error", "skipped") for child in case)
        marks.setdefault(by_address[address], {})[check] = passed
    return marks


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.class_speed")
    parser.add_argument("--vms", type=int, default=24)
    parser.add_argument(
        "--workers", type=int, default=None, help="grade --workers (default: its own)"
    )
    parser.add_argument("--plain", action="store_true", help="also time plain pytest-testinfra")
    args = parser.parse_args()
    if problems := missing_requirements():
        print("cannot run here: " + "; ".join(problems))
        return 2
    grade = str(Path(sys.executable).parent / "grade")
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    rows: list[tuple[str, float, float | None]] = []
    trips: dict[str, float] = {}
    with Fleet() as fleet:
        started = time.monotonic()
        vms = fleet.boot([(f"s{n:03d}", SCENARIOS["complete"]) for n in range(args.vms)])
        print(f"booted {args.vms} VMs in {time.monotonic() - started:.1f} s", flush=True)
        students = {name: vm.address for name, vm in vms.items()}
        roster = work / "class.csv"
        roster.write_text(
            "student,host,identity,bob_password\n"
            + "".join(f"{s},{a},{fleet.identity},{fleet.password}\n" for s, a in students.items())
        )
        env = {
            **os.environ,
            "GRADER_KNOWN_HOSTS": str(work / "known_hosts"),
            "GRADER_CACHE_DIR": str(work / "cache"),
        }
        base = [grade, "--roster", str(roster)]
        if args.workers:
            base += ["--workers", str(args.workers)]

        floor_s = floor(list(students.values()), fleet.identity)
        rows.append(("floor: 1 exec + greetings per host, 1 nmap, all at once", floor_s, None))
        runs = {}
        for label, extra in (("cold", []), ("warm", []), ("slow", ["--no-prefetch"])):
            out = work / label
            wall, rss, status = timed([*base, "--out", str(out), *extra], env)
            assert status == 0, f"grade --roster ({label}) exited {status}"
            runs[label] = marks_of_summary(out / "summary.csv")
            trips[label] = round_trips(out, students)
            name = {
                "cold": "grade --roster, nothing learned yet",
                "warm": "grade --roster, commands learned (one round trip per host)",
                "slow": "grade --roster --no-prefetch",
            }[label]
            rows.append((name, wall, rss))
        decided = {
            label: {s: {k: v for k, v in row.items() if k != "attempts"} for s, row in run.items()}
            for label, run in runs.items()
        }
        differ = [
            (
                student,
                label,
                {
                    k: (v, decided["slow"][student].get(k))
                    for k, v in row.items()
                    if decided["slow"][student].get(k) != v
                },
            )
            for label in ("cold", "warm")
            for student, row in decided[label].items()
            if row != decided["slow"][student]
        ]
        if differ:
            for student, label, cells in differ:
                print(f"DIFFERS {label} vs slow, {student}: {cells}")
            print(f"(reports kept in {work})")
            return 1
        ids = [c for c in next(iter(runs["warm"].values())) if c not in SUMMARY_COLUMNS]
        points = {s: {c: float(row[c]) > 0 for c in ids} for s, row in runs["warm"].items()}

        if args.plain:
            hosts = ",".join(
                f"paramiko://root@{a}?ssh_identity_file={fleet.identity}" for a in students.values()
            )
            plain = [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                str(PROJECT / "checks"),
                f"--hosts={hosts}",
                f"--lab-var=bob_password={fleet.password}",
            ]
            for label, extra in (("sequential", []), ("-n 8", ["-n", "8"])):
                junit = work / f"plain-{label.replace(' ', '')}.xml"
                wall, rss, _ = timed([*plain, *extra, f"--junitxml={junit}"], env)
                rows.append((f"plain pytest --hosts=paramiko://..., {label}", wall, rss))
                assert marks_of_junit(junit, students) == points, f"plain pytest ({label}) differs"
    shutil.rmtree(work, ignore_errors=True)  # kept above when the marks differ

    cores = os.cpu_count()
    print(f"\n{args.vms} VMs (complete scenario), {cores} cores; the same marks every way\n")
    print(f"| {'way of grading':<62} | {'wall s':>7} | {'x floor':>7} | {'peak RSS MB':>11} |")
    print(f"|{'-' * 64}|{'-' * 9}|{'-' * 9}|{'-' * 13}|")
    for name, wall, rss in rows:
        memory = f"{rss:.0f}" if rss is not None else "-"
        print(f"| {name:<62} | {wall:7.1f} | {wall / floor_s:7.2f} | {memory:>11} |")
    shown = ", ".join(f"{label} {n:.1f}" for label, n in trips.items())
    print(f"\nround trips per VM: {shown}")
    warm = next(w for n, w, _ in rows if n.startswith("grade --roster, commands"))
    sequential = [w for n, w, _ in rows if n.endswith("sequential")]
    print(f"\nwarm grade / floor = {warm / floor_s:.2f} (goal <= 2)")
    if sequential:
        print(f"plain sequential / warm grade = {sequential[0] / warm:.1f} (goal >= 20)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
