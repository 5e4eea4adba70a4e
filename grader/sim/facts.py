"""What the prover learns of the reference VM to make its mutants: a file's content, what a
path is (its type, mode and owners), an account's entry, a package's and a service's state,
what runs and what listens, and which files a command reads (``strace``). Each is asked of the
VM once, with a shell script run as root there (a ``Place``'s ``sh``); what the VM answers is
parsed defensively (a name or path is never put in a command unquoted, and what does not
parse is not known: no mutant is made of it)."""

from __future__ import annotations

import base64
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

Shell = Callable[[str], tuple[int, str, str]]
#: A file whose content is read at most this far (a file past it gets no line mutants)
TEXT_LIMIT = 256 * 1024
#: A folder whose mutants copy it whole is at most this big (KiB)
FOLDER_LIMIT = 16 * 1024
#: What ``strace`` learns of a command: the files it opened or looked at, and how
_TRACED = re.compile(
    r"^\d+\s+(?:open|openat|openat2|stat|lstat|newfstatat|statx|access|faccessat2?|execve)"
    r'\((?:AT_FDCWD, |-?\d+, )?"((?:[^"\\]|\\.)*)"(.*)\) = (-?\d+)'
)


def _b64(text: str) -> str:
    try:
        return base64.b64decode(text, validate=True).decode("utf-8", errors="surrogateescape")
    except ValueError:
        return ""


@dataclass(frozen=True)
class Stat:
    """What a path is on the VM: ``kind`` "file", "folder", "link", "other" or "missing"."""

    kind: str
    mode: int = 0  # what stat -L says (the link's target's, for a link)
    uid: int = 0
    gid: int = 0
    kib: int = 0  # a folder's size
    parent: bool = True  # its folder is there (something may be made there)


@dataclass(frozen=True)
class Proc:
    """A process of the VM."""

    pid: int
    ppid: int
    sid: int
    uid: int
    comm: str
    exe: str
    argv: tuple[str, ...]
    cwd: str
    unit: str = ""  # the systemd service it runs in ("" for none), where systemd is PID 1
    cmdline: str = ""  # its /proc/PID/cmdline as base64, as the VM's base64 -w0 writes it

    @property
    def program(self) -> str:
        """Its program's name (of its executable's path)."""
        return self.exe.removesuffix(" (deleted)").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Listening:
    protocol: str  # tcp or udp
    address: str
    port: int
    pids: tuple[int, ...]


@dataclass(frozen=True)
class Service:
    """A service as the VM knows it: the links that enable it, how it is started."""

    name: str
    links: tuple[str, ...]  # systemd's and SysV's links that make it start at boot
    systemd: bool  # systemd is the VM's PID 1 (it is stopped and started with systemctl)
    script: str  # its rc script (/etc/init.d/NAME, /etc/rc.d/rc.NAME), "" for none


@dataclass
class Facts:
    """The reference VM, asked through ``sh`` (a script as root there: status, out, err)."""

    sh: Shell
    _said: dict[str, tuple[int, str, str]] = field(default_factory=dict)

    def ask(self, script: str) -> tuple[int, str, str]:
        if script not in self._said:
            self._said[script] = self.sh(script)
        return self._said[script]

    def text(self, path: str) -> str | None:
        """A regular file's text (None: no regular file there, or a link)."""
        q = shlex.quote(path)
        status, text, _ = self.ask(f"[ -f {q} ] && [ ! -L {q} ] && head -c {TEXT_LIMIT} -- {q}")
        return text if status == 0 else None

    def stat(self, path: str) -> Stat | None:
        """What ``path`` is (None: it could not be told)."""
        q = shlex.quote(path)
        status, out, _ = self.ask(
            f'p={q}; if [ -L "$p" ]; then echo link; elif [ -d "$p" ]; then echo folder; '
            'elif [ -f "$p" ]; then echo file; elif [ -e "$p" ]; then echo other; '
            'else echo missing; fi; stat -L -c "%a %u %g" -- "$p" 2>/dev/null || echo -; '
            '{ [ -d "$p" ] && [ ! -L "$p" ] && du -sk -- "$p" 2>/dev/null | cut -f1; } || echo 0; '
            '[ -d "$(dirname -- "$p")" ] && echo parent || echo none'
        )
        lines = out.split("\n")
        if status != 0 or len(lines) < 4:
            return None
        kind, numbers, kib, parent = lines[:4]
        values = numbers.split()
        if kind not in ("link", "folder", "file", "other", "missing"):
            return None
        if len(values) == 3 and all(v.isascii() and v.isdigit() for v in values):
            mode, uid, gid = int(values[0], 8), int(values[1]), int(values[2])
        else:
            mode = uid = gid = 0
        size = int(kib) if kib.isascii() and kib.isdigit() else FOLDER_LIMIT + 1
        return Stat(kind, mode, uid, gid, size, parent == "parent")

    def entry(self, database: str, name: str) -> list[str] | None:
        """The local entry of ``name`` in /etc/``database`` (passwd, group ...), its fields."""
        text = self.text(f"/etc/{database}")
        for line in (text or "").split("\n"):
            fields = line.split(":")
            if fields[0] == name and len(fields) > 2:
                return fields
        return None

    def groups_of(self, user: str) -> list[str]:
        """The groups ``user`` is in, its primary group first."""
        status, out, _ = self.ask(f"id -Gn -- {shlex.quote(user)}")
        return out.split() if status == 0 else []

    def group_names(self) -> list[str]:
        """The local groups' names, in order."""
        text = self.text("/etc/group") or ""
        return [line.split(":", 1)[0] for line in text.split("\n") if ":" in line]

    def installed(self, name: str, manager: str) -> bool | None:
        """Whether the package ``name`` is installed (None: this manager is not known here)."""
        q = shlex.quote(name.split(":", 1)[0])
        if manager == "dpkg":
            status, out, _ = self.ask(f"dpkg-query -W -f '${{Status}}' -- {q}")
            return status == 0 and out.split()[-2:] == ["ok", "installed"]
        if manager == "pacman":
            return bool(self.pacman(name))
        return None

    def pacman(self, name: str) -> list[str]:
        """pacman's folders of the package ``name`` in its local database."""
        q = shlex.quote(name)
        _, out, _ = self.ask(
            'for d in /var/lib/pacman/local/*/; do [ -f "$d/desc" ] && '
            f'[ "$(sed -n 2p -- "$d/desc")" = {q} ] && printf "%s\\n" "${{d%/}}"; done; true'
        )
        return [line for line in out.split("\n") if line.startswith("/var/lib/pacman/local/")]

    def service(self, name: str) -> Service:
        q = shlex.quote(name)
        _, out, _ = self.ask(
            f"n={q}; unit=; for d in /etc/systemd/system /run/systemd/system "
            "/lib/systemd/system /usr/lib/systemd/system; do "
            '[ -e "$d/$n.service" ] && { unit=$(readlink -f -- "$d/$n.service"); break; }; done; '
            'if [ -n "$unit" ] && [ -d /etc/systemd/system ]; then '
            "find /etc/systemd/system -type l 2>/dev/null | while IFS= read -r l; do "
            '[ "$(readlink -f -- "$l")" = "$unit" ] && printf "link %s\\n" "$(printf %s "$l" '
            '| base64 -w0)"; done; fi; for l in /etc/rc[0-6S].d/S[0-9][0-9]"$n"; do '
            '[ -L "$l" ] && printf "link %s\\n" "$(printf %s "$l" | base64 -w0)"; done; '
            "[ -d /run/systemd/system ] && echo systemd; "
            'for s in "/etc/init.d/$n" "/etc/rc.d/rc.$n"; do [ -f "$s" ] && echo "script $s"; '
            "done; true"
        )
        links, systemd, script = [], False, ""
        for line in out.split("\n"):
            word, _, rest = line.partition(" ")
            if word == "link" and (path := _b64(rest)).startswith("/etc/"):
                links.append(path)
            elif word == "systemd":
                systemd = True
            elif word == "script" and not script:
                script = rest
        return Service(name, tuple(dict.fromkeys(links)), systemd, script)

    def processes(self) -> list[Proc]:
        """Every process of the VM but the kernel's threads."""
        _, out, _ = self.ask(
            "b() { x=$(base64 -w0); printf '%s' \"${x:--}\"; }; "
            'for d in /proc/[0-9]*; do st=$(cat "$d/stat" 2>/dev/null) || continue; '
            'exe=$(readlink "$d/exe" 2>/dev/null) || continue; rest=${st##*) }; '
            "set -- $rest; uid=$(awk '/^Uid:/{print $2}' \"$d/status\" 2>/dev/null); "
            'cg=; [ -d /run/systemd/system ] && cg=$(grep -m1 "^0::" "$d/cgroup" 2>/dev/null); '
            'printf "%s %s %s %s %s %s %s %s %s\\n" "${d#/proc/}" "$2" "$4" "${uid:-0}" '
            '"$(b < "$d/comm")" "$(printf %s "$exe" | b)" "$(b < "$d/cmdline")" '
            '"$(printf %s "$(readlink "$d/cwd" 2>/dev/null)" | b)" "$(printf %s "$cg" | b)"; '
            "done; true"
        )
        found = []
        for line in out.split("\n"):
            words = line.split(" ")
            if len(words) != 9 or not all(w.isascii() and w.isdigit() for w in words[:4]):
                continue
            pid, ppid, sid, uid = (int(w) for w in words[:4])
            raw = _b64(words[6])
            argv = tuple(raw.removesuffix("\0").split("\0")) if raw else ()
            group = _b64(words[8])
            unit = re.search(r"/([^/]+\.service)$", group.strip())
            found.append(Proc(pid, ppid, sid, uid, _b64(words[4]).strip(), _b64(words[5]),
                              argv, _b64(words[7]) or "/", unit.group(1) if unit else "",
                              words[6]))  # fmt: skip
        return found

    def environ(self, pid: int) -> list[str]:
        """A process's environment (at most 16 KiB of it; [] past that)."""
        status, out, _ = self.ask(f"base64 -w0 < /proc/{pid}/environ")
        found = [v for v in _b64(out).split("\0") if "=" in v]
        return found if status == 0 and sum(map(len, found)) <= 16 * 1024 else []

    def resolves(self, program: str, exe: str) -> bool:
        """``program`` (a process's argv[0]), run as a command, is ``exe``."""
        q = shlex.quote(program)
        status, out, _ = self.ask(f'x=$(command -v -- {q}) && readlink -f -- "$x"')
        return status == 0 and out.strip() == exe.removesuffix(" (deleted)") and bool(exe)

    def listening(self) -> list[Listening]:
        """The TCP and UDP sockets that listen, with the processes that hold them (ss)."""
        status, out, _ = self.ask("ss -Hlntup")
        found = []
        for line in out.split("\n") if status == 0 else ():
            words = line.split()
            if len(words) < 5 or words[0] not in ("tcp", "udp"):
                continue
            address, _, port = words[4].rpartition(":")
            if not port.isascii() or not port.isdigit():
                continue
            pids = tuple(int(p) for p in re.findall(r"pid=(\d+)", line))
            found.append(Listening(words[0], address.strip("[]"), int(port), pids))
        return found

    def has(self, program: str) -> bool:
        return self.ask(f"command -v -- {shlex.quote(program)} >/dev/null")[0] == 0

    def traced(self, command: str) -> list[str] | None:
        """The files ``command`` opened or looked at and found, run as a check runs it (as
        root, its output thrown away), in order; None where the VM has no strace."""
        if not self.has("strace"):
            return None
        status, out, _ = self.ask(
            't=$(mktemp) && { timeout 60 strace -f -qq -s 4096 -o "$t" -e '
            "trace=open,openat,openat2,stat,lstat,newfstatat,statx,access,faccessat,faccessat2 "
            f"-- sh -c {shlex.quote(command)} >/dev/null 2>&1 </dev/null; "
            'head -c 4194304 -- "$t"; rm -f -- "$t"; }'
        )
        found: dict[str, None] = {}
        for line in out.split("\n"):
            match = _TRACED.match(line)
            if match and int(match.group(3)) >= 0 and "\\" not in match.group(1):
                found.setdefault(match.group(1))
        return list(found) if status == 0 else None
