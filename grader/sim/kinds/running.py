"""What runs and what listens: processes (testinfra's ``process``, the toolkit's
``processes``: ``ps``), sockets (testinfra's ``socket``, the toolkit's ``listeners``: ``ss`` or
``netstat``), services (testinfra's ``service``: ``systemctl``, ``service``, rc scripts) and
kernel settings (``sysctl``).

A listing of every process or socket does not say which one a check looks for: each daemon the
reference runs (a process whose parent is PID 1, of a session of its own) is stopped in turn,
and each that listens on an address other than loopback is made to listen on 127.0.0.1 only
(the daemon stopped, a stand-in listening there on its ports in its place). A daemon is started
again as it was (its executable, exact arguments, environment and folder, as root; with
systemctl where systemd runs it), and its undo waits until it runs and listens again; one
whose arguments it rewrote (a title such as ``mta: accepting connections``) cannot be, and has no
undo. A service is disabled (the links that start it at boot removed and put back) and stopped
(by systemctl or its rc script, and started again the same way, until its daemons run as they
did). A setting of the VM's network (``net.*``) is set the other way.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from grader.sim.asked import SERVICE_NAME
from grader.sim.facts import Listening, Proc
from grader.sim.kinds import Ground, fresh, kept_mutant
from grader.sim.mutants import Mutant, backup_of, described

#: Lists the pids of the daemons (parent PID 1) running $exe with the arguments $want (base64)
_FIND = (
    'found() { pids=; for d in /proc/[0-9]*; do [ "$(readlink "$d/exe" 2>/dev/null)" = "$exe" ] '
    '|| continue; [ "$(base64 -w0 < "$d/cmdline" 2>/dev/null)" = "$want" ] || continue; '
    'st=$(cat "$d/stat" 2>/dev/null) || continue; set -- ${st##*) }; [ "$1" != Z ] || continue; '
    'pids="$pids ${d#/proc/}"; done; [ -n "$pids" ]; }; '
)


def _wait(name: str, condition: str) -> str:
    """The shell that waits (at most ~10 s) until ``condition`` holds, as a function
    ``name``, called: its status says whether it came to hold."""
    return (
        f"{name}() {{ for _ in $(seq 100); do {condition} && return 0; sleep 0.1; done; "
        f"{condition}; }}; {name}"
    )


#: The stand-in that listens on loopback in a daemon's place: a marker, then PROTOCOL:PORT each
_STAND_IN = (
    "import socket, sys, time\n"
    "held = []\n"
    "for spec in sys.argv[2:]:\n"
    "    kind, port = spec.split(':')\n"
    "    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if kind == 'tcp' "
    "else socket.SOCK_DGRAM)\n"
    "    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "    s.bind(('127.0.0.1', int(port)))\n"
    "    s.listen(16) if kind == 'tcp' else None\n"
    "    held.append(s)\n"
    "time.sleep(10 ** 9)\n"
)
PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def tops(processes: Sequence[Proc]) -> list[Proc]:
    """The daemons: a process whose parent is PID 1, of a session (not PID 1's own)."""
    return [p for p in processes if p.ppid == 1 and p.sid != 0 and p.pid != 1 and p.cmdline
            and p.cmdline != "-" and p.exe]  # fmt: skip


def top_of(pid: int, processes: Sequence[Proc]) -> Proc | None:
    """The daemon ``pid`` is of (itself, or the daemon it descends from)."""
    by_pid = {p.pid: p for p in processes}
    seen = set()
    while pid in by_pid and pid not in seen:
        seen.add(pid)
        process = by_pid[pid]
        if process in tops(processes):
            return process
        pid = process.ppid
    return None


def _ports(top: Proc, listening: Sequence[Listening], processes: Sequence[Proc]) -> list[str]:
    held = {f"{s.protocol}:{s.port}" for s in listening
            if any(top_of(pid, processes) == top for pid in s.pids)}  # fmt: skip
    return sorted(held)


def _listens(ports: Sequence[str], on: str = "") -> str:
    """A shell condition: each port listens (on the address ``on``; "": any)."""
    if not ports:
        return "true"
    tests = []
    for port in ports:
        kind, number = port.split(":")
        option = "-Hlnt" if kind == "tcp" else "-Hlnu"
        address = f" '( src {on} )'" if on else ""
        tests.append(f"ss {option} 'sport = :{number}'{address} | grep -q .")
    return " && ".join(tests)


def _free(ports: Sequence[str]) -> str:
    return " && ".join(f"! {{ {_listens([p])}; }}" for p in ports) or "true"


def _same(top: Proc, processes: Sequence[Proc]) -> list[Proc]:
    return [p for p in tops(processes) if (p.exe, p.cmdline) == (top.exe, top.cmdline)]


def _restart(ground: Ground, top: Proc) -> str | None:
    """The shell that starts ``top`` again as it was (None: it cannot be)."""
    facts, argv = ground.facts, top.argv
    try:
        "".join(argv).encode()
    except UnicodeEncodeError:
        return None
    if not argv or not facts.resolves(argv[0], top.exe):
        return None  # its title rewritten, or its program not found as it was started
    environment = facts.environ(top.pid) or [PATH]
    if not any(v.startswith("PATH=") for v in environment):
        environment.append(PATH)
    words = " ".join(shlex.quote(w) for w in (*environment, *argv))
    return (
        f"found || (cd -- {shlex.quote(top.cwd)} 2>/dev/null || cd /; "
        f"setsid env -i {words} </dev/null >/dev/null 2>&1 &)"
    )


def _stopping(ground: Ground, top: Proc, listening: Sequence[Listening],
              processes: Sequence[Proc]) -> tuple[str, str | None, list[str]]:  # fmt: skip
    """The shell that stops the daemon ``top`` (and its like), the one that starts it again
    (None: it cannot be), and the ports it holds."""
    ports = _ports(top, listening, processes)
    head = f"exe={shlex.quote(top.exe)}; want={shlex.quote(top.cmdline)}; {_FIND}"
    freed = _wait("freed", _free(ports))
    if top.unit:
        unit = shlex.quote(top.unit)
        stop = f"{head}systemctl stop -- {unit} && ! found && {freed}"
        start = f"systemctl start -- {unit}"
    else:
        stop = (
            f"{head}found && kill $pids 2>/dev/null; {_wait('gone', '! found')} || "
            "{ ! found || kill -9 $pids 2>/dev/null; sleep 0.5; ! found; } && " + freed
        )
        start = _restart(ground, top) or ""
    if not start:
        return stop, None, ports
    undo = f"{head}{start} && " + _wait("back", f"found && {{ {_listens(ports)}; }}")
    return stop, undo, ports


def _daemons(ground: Ground) -> tuple[list[Proc], list[Listening], list[Proc]]:
    processes = ground.facts.processes()
    return tops(processes), ground.facts.listening(), processes


def _stopped(ground: Ground, top: Proc, listening: Sequence[Listening],
             processes: Sequence[Proc]) -> Mutant:  # fmt: skip
    stop, undo, ports = _stopping(ground, top, listening, processes)
    shown = described(" ".join(top.argv)) or top.program
    says = f"the daemon {top.program} stopped ({shown})" + (
        ", started again as it was after" if undo else ""
    )
    touches = (f"process:{top.program}", *(f"port:{p.split(':')[1]}" for p in ports))
    return Mutant(f"process:{top.program}:stopped", says, stop, undo, ground.read_by,
                  touches=touches)  # fmt: skip


def processes(ground: Ground) -> list[Mutant]:
    """A listing of the processes: each daemon stopped."""
    daemons, listening, everything = _daemons(ground)
    return [_stopped(ground, top, listening, everything) for top in _unique(daemons)]


def _unique(daemons: Sequence[Proc]) -> list[Proc]:
    return list({(p.exe, p.cmdline): p for p in reversed(daemons)}.values())[::-1]


def sockets(ground: Ground) -> list[Mutant]:
    """A listing of the sockets: each daemon that listens stopped, and each that listens on an
    address other than loopback made to listen on 127.0.0.1 only."""
    daemons, listening, everything = _daemons(ground)
    made = []
    for top in _unique(daemons):
        ports = _ports(top, listening, everything)
        if not ports:
            continue
        stopped = _stopped(ground, top, listening, everything)
        made.append(stopped)
        outside = [s for s in listening if not s.address.startswith("127.")
                   and s.address != "::1" and f"{s.protocol}:{s.port}" in ports]  # fmt: skip
        if outside:
            made.append(_loopback(ground, top, stopped, ports))
    return made


def _loopback(ground: Ground, top: Proc, stopped: Mutant, ports: list[str]) -> Mutant:
    """``top`` stopped, and a stand-in listening on 127.0.0.1 on its ports (its pid kept)."""
    id = f"process:{top.program}:loopback"
    backup = backup_of(id, ground.backups, top.cmdline)
    b = shlex.quote(backup)
    start = (
        f"{fresh(backup, ground.backups)} && {{ command -v python3 >/dev/null || {{ echo 'no "
        "python3 on the VM for a stand-in that listens on loopback' >&2; exit 1; }; } && "
        f"(cd /; setsid python3 -c {shlex.quote(_STAND_IN)} grade-prove-stand-in "
        f"{' '.join(ports)} </dev/null >/dev/null 2>&1 & echo $! > {b}) && "
        + _wait("bound", _listens(ports, "127.0.0.1"))
    )
    kill = (
        f"p=$(cat {b}) && case $p in ''|*[!0-9]*) false;; esac && "
        f"{{ ! tr '\\0' ' ' < /proc/$p/cmdline 2>/dev/null | grep -q grade-prove-stand-in "
        f'|| kill "$p"; }} && ' + _wait("freed", _free(ports))
    )
    undo = f"{kill} && {stopped.undo}" if stopped.undo else None
    listed = ", ".join(f"{p.split(':')[0]} {p.split(':')[1]}" for p in ports)
    return Mutant(id, f"the daemon {top.program} made to listen on 127.0.0.1 only ({listed})",
                  f"{stopped.apply} && {start}", undo, ground.read_by, backup=backup,
                  touches=stopped.touches)  # fmt: skip


def service(ground: Ground) -> list[Mutant]:
    """A service a check asked about: disabled, and (if it was asked whether it runs, and it
    does) stopped."""
    name, facts = ground.name, ground.facts
    if not SERVICE_NAME.match(name):
        return []
    found = facts.service(name)
    touches = (f"service:{name}",)
    made = []
    if "enabled" in ground.aspects and found.links:
        made.append(
            kept_mutant(f"service:{name}:disabled",
                        f"the service {name} disabled (its links {', '.join(found.links)[:80]} "
                        "removed)", found.links,
                        " && ".join(f"rm -f -- {shlex.quote(link)}" for link in found.links),
                        ground, touches)
        )  # fmt: skip
    if "running" in ground.aspects:
        made += _service_stopped(ground, name, found.systemd, found.script, touches)
    return made


def _service_stopped(ground: Ground, name: str, systemd: bool, script: str,
                     touches: tuple[str, ...]) -> list[Mutant]:  # fmt: skip
    q = shlex.quote(name)
    if systemd:
        running, stop, start = f"systemctl is-active --quiet -- {q}", "systemctl stop --", \
            "systemctl start --"  # fmt: skip
    elif script:
        s = shlex.quote(script)
        running, stop, start = f"{s} status >/dev/null 2>&1", f"{s} stop", f"{s} start"
    else:
        return []
    if ground.facts.ask(running)[0] != 0:
        return []
    id = f"service:{name}:stopped"
    backup = backup_of(id, ground.backups, name)
    b = shlex.quote(backup)
    # the daemons' arguments kept before, and each running again after
    daemons = (
        'for d in /proc/[0-9]*; do st=$(cat "$d/stat" 2>/dev/null) || continue; '
        'set -- ${st##*) }; [ "$2" = 1 ] && base64 -w0 < "$d/cmdline" && echo; done; true'
    )
    back = (
        f'while IFS= read -r w; do [ -z "$w" ] || {{ {daemons}; }} | grep -qxF -- "$w" '
        f"|| exit 1; done < {b}"
    )
    return [
        Mutant(id, f"the service {name} stopped ({stop.split(' --')[0]} {name}), started "
               "again after", f"{fresh(backup, ground.backups)} && {{ {daemons}; }} > {b} && "
               f"{stop} {q} >/dev/null 2>&1; ! {running}",
               f"{{ {running} || {start} {q} >/dev/null 2>&1; }} && "
               + _wait("back", f"( {back} )"),
               ground.read_by, backup=backup, touches=touches, watch=ground.watch),
    ]  # fmt: skip


def sysctl(ground: Ground) -> list[Mutant]:
    """A setting of the VM's network (``net.*``, the VM's own even on the simulator) that is
    0 or 1, set the other way."""
    name = ground.name
    if not name.startswith("net.") or not all(c.isalnum() or c in "._-/" for c in name):
        return []
    status, value, _ = ground.facts.ask(f"sysctl -n -- {shlex.quote(name)}")
    if status != 0 or value.strip() not in ("0", "1"):
        return []
    other = "1" if value.strip() == "0" else "0"
    id = f"sysctl:{name}:{other}"
    backup = backup_of(id, ground.backups, name)
    q, b = shlex.quote(name), shlex.quote(backup)
    return [
        Mutant(id, f"{name} set to {other} (was {value.strip()})",
               f"{fresh(backup, ground.backups)} && sysctl -n -- {q} > {b} && "
               f"sysctl -q -w {q}={other}", f'sysctl -q -w {q}="$(cat {b})"', ground.read_by,
               backup=backup, touches=(f"sysctl:{name}",), watch=ground.watch),
    ]  # fmt: skip
