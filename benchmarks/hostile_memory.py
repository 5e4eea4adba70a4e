"""The grader's peak memory grading a class of hostile VMs, each of which says too much.

    sudo .venv/bin/python -m benchmarks.hostile_memory --vms 24
    sudo .venv/bin/python -m benchmarks.hostile_memory --vms 100 --evidence-limit 32

Boots N simulated VMs of tests/hostile.py's ``loud_shell`` (Lab 6 done right, and root's login
shell adding 7 MiB to the output and to the errors of every command sshd runs: kept whole, one
grading would hold some hundreds of MB), grades them as a class (``grade --roster``, in a
process of its own started by a small one that reads its peak RSS), and prints the wall time,
the peak, and which checks hit the evidence limit. Bounded: the class run is given at most
``--timeout`` seconds (the grader's own per-host limits end it well before).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchmarks.class_speed import timed
from grader.sim import Fleet, Scenario, missing_requirements
from tests.hostile import loud_shell


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hostile_memory")
    parser.add_argument("--vms", type=int, default=24)
    parser.add_argument("--workers", type=int, default=None, help="grade --workers")
    parser.add_argument("--evidence-limit", type=int, default=None, metavar="MIB")
    parser.add_argument("--no-prefetch", action="store_true", help="every command live")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds for the class run")
    args = parser.parse_args()
    if problems := missing_requirements():
        print("cannot run here: " + "; ".join(problems))
        return 2
    grade = str(Path(sys.executable).parent / "grade")
    work = Path(tempfile.mkdtemp(prefix="bench-hostile-"))
    scenario = Scenario("loud_shell", "every command says 7 MiB more", loud_shell)
    with Fleet() as fleet:
        started = time.monotonic()
        vms = fleet.boot([(f"h{n:03d}", scenario) for n in range(args.vms)])
        print(f"booted {args.vms} hostile VMs in {time.monotonic() - started:.1f} s", flush=True)
        roster = work / "class.csv"
        roster.write_text(
            "student,host,identity,bob_password\n"
            + "".join(f"{s},{vm.address},{fleet.identity},{fleet.password}\n"
                      for s, vm in vms.items())
        )  # fmt: skip
        env = {
            **os.environ,
            "GRADER_KNOWN_HOSTS": str(work / "known_hosts"),
            "GRADER_CACHE_DIR": str(work / "cache"),
        }
        command = [grade, "--roster", str(roster), "--out", str(work / "out")]
        if args.workers:
            command += ["--workers", str(args.workers)]
        if args.evidence_limit:
            command += ["--evidence-limit", str(args.evidence_limit)]
        if args.no_prefetch:
            command.append("--no-prefetch")
        wall, rss, status = timed(["timeout", str(args.timeout), *command], env)
    hit: Counter[str] = Counter()
    graded, why_not = 0, Counter[str]()
    for student in vms:
        path = work / "out" / f"{student}.json"
        if not path.exists():
            why_not["no report"] += 1
            continue
        report = json.loads(path.read_text())
        graded += report["status"] == "graded"
        if report["status"] != "graded":
            why_not[f"{report['error_kind']}: {report['error']}"] += 1
        hit.update(c["id"] for c in report["checks"] if c["error_kind"] == "evidence_limit")
    shutil.rmtree(work, ignore_errors=True)
    limit = args.evidence_limit or 32
    print(
        f"\n{args.vms} hostile VMs, {os.cpu_count()} cores, --evidence-limit {limit}"
        f"{' --no-prefetch' if args.no_prefetch else ''}: exit {status}, {graded} graded, "
        f"{wall:.1f} s, peak RSS {rss:.0f} MB"
    )
    for why, count in why_not.items():
        print(f"not graded ({count}): {why}")
    print("checks that hit the evidence limit (VMs):")
    for check, count in sorted(hit.items()):
        print(f"  {check}: {count}")
    return 0 if status in (0, 1) and graded == args.vms else 1


if __name__ == "__main__":
    sys.exit(main())
