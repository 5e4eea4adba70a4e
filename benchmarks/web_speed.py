"""How the course on the web bears a class asking at once: every student presses "Grade my VM
now" within seconds, against `grade course run` of the same class.

    sudo .venv/bin/python -m benchmarks.web_speed --vms 24
    sudo .venv/bin/python -m benchmarks.web_speed --vms 100 --graders 32

Boots N simulated VMs (Lab 6 done right), makes a course of them, times `grade course run lab6`
(a class run, its workers: --graders), then starts `grade serve --graders G` and has each of
the N students sign in and ask for a grading of their VM (all within --spread seconds), while a
reader fetches pages (a student's marks, the class table) as fast as one reader does. It
prints when the last request was done (from the first ask, and from the last: with asks spread
over a minute, the first figure is bounded below by the spread) against the class run, the
pages' latencies (median, 95th percentile) while the requests were graded, and the peak memory
of serve's processes (the largest one's, and all of them together, sampled). Every
request must end done with full marks. Bounded: it stops by itself (--timeout).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import http.cookiejar
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.class_speed import MEASURED, timed
from grader.sim import Fleet, missing_requirements
from scenarios import GRADING_VARS, SCENARIOS

COURSE = """\
title = "Benchmark"
roster = "class.csv"
staff = ["bench"]

[[labs]]
id = "lab6"
lab = "lab6"
due = 2099-12-01T12:00:00+00:00
vars = {{ bob_password = {{ env = "BENCH_BOB_PW" }} }}
requests = {{ every = "1s", per_day = 100 }}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def group_rss_mb(group: int) -> float:
    """The resident memory of every process of a process group, summed (MB)."""
    total = 0
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == group:  # the fifth field: the process group
                total += int((entry / "statm").read_text().split()[1]) * page
    return total / 2**20


class Browser:
    """A signed-in person's cookie jar and the session's CSRF token."""

    def __init__(self, site: str, token: str) -> None:
        self.site = site
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        page = self.opener.open(f"{site}/signin/{token}").read().decode()
        found = re.search(r'name="csrftoken" value="([^"]+)"', page)
        assert found is not None
        body = f"csrftoken={found.group(1)}&token={token}".encode()
        self.opener.open(urllib.request.Request(f"{site}/signin", data=body, method="POST"))
        self.csrf = json.loads(self.get("/api/me"))["csrf"]

    def get(self, path: str) -> bytes:
        with self.opener.open(f"{self.site}{path}", timeout=30) as answer:
            return bytes(answer.read())

    def ask(self) -> int:
        request = urllib.request.Request(
            f"{self.site}/api/grade", data=b'{"lab": "lab6"}', method="POST",
            headers={"Content-Type": "application/json", "X-CSRF-Token": self.csrf},
        )  # fmt: skip
        with self.opener.open(request, timeout=30) as answer:
            return int(json.loads(answer.read())["request"])


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.web_speed")
    parser.add_argument("--vms", type=int, default=24)
    parser.add_argument("--graders", type=int, default=32, help="grade serve --graders")
    parser.add_argument("--spread", type=float, default=10.0, help="seconds the asks spread over")
    parser.add_argument("--timeout", type=float, default=900.0, help="stop after this long")
    args = parser.parse_args()
    if problems := missing_requirements():
        print("cannot run here: " + "; ".join(problems))
        return 2
    grade = str(Path(sys.executable).parent / "grade")
    with (
        tempfile.TemporaryDirectory(prefix="bench-web-") as kept,
        Fleet(SCENARIOS, GRADING_VARS) as fleet,
    ):
        work = Path(kept)  # the course, its book and the links: gone at the end
        course = work / "course"
        course.mkdir()
        started = time.monotonic()
        vms = fleet.boot([(f"w{n:03d}", SCENARIOS["complete"]) for n in range(args.vms)])
        print(f"booted {args.vms} VMs in {time.monotonic() - started:.1f} s", flush=True)
        (course / "course.toml").write_text(COURSE.format())
        with open(course / "class.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["student", "host", "identity"])
            for name, vm in vms.items():
                writer.writerow([name, vm.address, fleet.identity])
        env = {
            **os.environ, "GRADER_KNOWN_HOSTS": str(work / "known_hosts"),
            "GRADER_CACHE_DIR": str(work / "cache"),
            "BENCH_BOB_PW": fleet.grading_vars["bob_password"],
        }  # fmt: skip
        env.pop("GRADER_NOW", None)
        run_s, run_rss, status = timed(
            [grade, "course", "run", "lab6", "--course", str(course), "--workers",
             str(args.graders)], env,
        )  # fmt: skip
        assert status == 0, f"grade course run exited {status}"
        print(f"grade course run: {run_s:.1f} s, {run_rss:.0f} MB", flush=True)
        links = work / "links.csv"
        subprocess.run([grade, "serve", "link", "--roster", "--out", str(links), "--course",
                        str(course)], env=env, check=True, capture_output=True)  # fmt: skip
        staff_token = subprocess.run(
            [grade, "serve", "link", "--staff", "bench", "--course", str(course)],
            env=env, check=True, capture_output=True, text=True,
        ).stdout.strip().rsplit("/", 1)[-1]  # fmt: skip
        with open(links, newline="") as f:
            tokens = {r["student"]: r["address"].rsplit("/", 1)[-1] for r in csv.DictReader(f)}
        port = free_port()
        peak = work / "serve-peak"
        # the measuring wrapper ignores SIGTERM (serve sets its own handler), so that stopping
        # the group stops serve as systemd would, and the wrapper then writes serve's peak
        measured = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); " + MEASURED
        serve = subprocess.Popen(
            [sys.executable, "-c", measured, str(peak), grade, "serve", "--course", str(course),
             "--listen", f"127.0.0.1:{port}", "--graders", str(args.graders)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        site = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                assert time.monotonic() < deadline, "grade serve did not start"
                time.sleep(0.2)
            with ThreadPoolExecutor(16) as pool:
                people = dict(zip(tokens, pool.map(lambda s: Browser(site, tokens[s]), tokens)))
            staff = Browser(site, staff_token)
            latencies: list[float] = []
            stop = threading.Event()

            def read() -> None:  # one reader, as fast as it goes, while the class is graded
                someone = next(iter(people.values()))
                while not stop.is_set():
                    for who, path in ((someone, "/api/me"), (staff, "/"), (someone, "/")):
                        begun = time.monotonic()
                        who.get(path)
                        latencies.append(time.monotonic() - begun)

            group_peak = [0.0]

            def sample() -> None:  # serve and its graders' process, together
                while not stop.wait(0.5):
                    group_peak[0] = max(group_peak[0], group_rss_mb(serve.pid))

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            asked_at = time.monotonic()
            ids: dict[str, int] = {}
            gap = args.spread / max(1, len(people))
            for student, person in people.items():
                ids[student] = person.ask()
                time.sleep(gap)
            last_asked = time.monotonic()
            states: dict[str, dict[str, object]] = {}
            give_up = asked_at + args.timeout
            while len(states) < len(ids) and time.monotonic() < give_up:
                for student, request in ids.items():
                    if student in states:
                        continue
                    found = json.loads(people[student].get(f"/api/requests/{request}"))
                    if found["state"] not in ("queued", "grading"):
                        states[student] = found
                time.sleep(0.5)
            last_s = time.monotonic() - asked_at
            after_last_s = time.monotonic() - last_asked
            stop.set()
            reader.join(timeout=30)
            sampler.join(timeout=30)
        finally:
            stopping = time.monotonic()
            os.killpg(serve.pid, signal.SIGTERM)
            try:
                serve.wait(timeout=600)
            except subprocess.TimeoutExpired:
                print("grade serve did not stop within 600 s of SIGTERM: killed", flush=True)
                os.killpg(serve.pid, signal.SIGKILL)
                serve.wait()
            stop_s = time.monotonic() - stopping
            print(f"grade serve stopped {stop_s:.1f} s after SIGTERM", flush=True)
        serve_mb = int(peak.read_text() or 0) / 1024 if peak.exists() else float("nan")
    not_done = [s for s in ids if states.get(s, {}).get("state") != "done"]
    wrong = [s for s, found in states.items() if found.get("mark") != 20]
    latencies.sort()
    p95 = latencies[int(0.95 * (len(latencies) - 1))] if latencies else float("nan")
    cores = os.cpu_count()
    print(f"\n{args.vms} students ask within {args.spread:g} s; {args.graders} graders; "
          f"{cores} cores\n")  # fmt: skip
    print(f"| {'figure':<58} | {'value':>9} |")
    print(f"|{'-' * 60}|{'-' * 11}|")
    figures = [
        ("grade course run lab6, the same class (s)", f"{run_s:.1f}"),
        ("first ask to last request done (s)", f"{last_s:.1f}"),
        ("... / grade course run (goal <= 1.5)", f"{last_s / run_s:.2f}"),
        ("last ask to last request done (s)", f"{after_last_s:.1f}"),
        ("... / grade course run", f"{after_last_s / run_s:.2f}"),
        ("pages read while grading", f"{len(latencies)}"),
        ("page latency, median (ms)", f"{1000 * statistics.median(latencies):.0f}"
         if latencies else "-"),
        ("page latency, 95th percentile (ms, goal < 100)", f"{1000 * p95:.0f}"),
        ("grade serve's largest process, peak memory (MB)", f"{serve_mb:.0f}"),
        ("grade serve's processes together, peak (MB, sampled)", f"{group_peak[0]:.0f}"),
        ("grade course run's peak memory (MB)", f"{run_rss:.0f}"),
    ]  # fmt: skip
    for name, value in figures:
        print(f"| {name:<58} | {value:>9} |")
    if not_done or wrong:
        print(f"\nNOT DONE: {not_done}; not full marks: {wrong} (course kept in {work})")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
