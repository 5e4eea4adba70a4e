"""What cuts the grader's own way in: what a login of the grader's reads or needs on the VM,
derived from how it logs in, so that a mutant never changes it.

The grader logs in over SSH as a user (root by default) with a key or a password, and runs
each command in that user's shell (through ``sudo -n`` when it is not root). What that needs:

- sshd: its program, its host keys and its folder (/etc/ssh), the port it listens on, its
  processes; its configuration (``sshd_config`` and ``sshd_config.d``) is the one part tried,
  and only where a second login still opens with the change (the proof checks it before
  grading, and undoes the change through its open connection otherwise);
- PAM's sshd stack: /etc/pam.d/sshd and the files it includes (learned on the VM),
  /etc/security, and pam_env's files where the stack has pam_env; the services a PAM stack
  and the name service talk to (systemd's logind, D-Bus, nscd, sssd, nslcd);
- the name service: /etc/nsswitch.conf, and of the accounts (/etc/passwd, /etc/shadow,
  /etc/group) the login user's entries and its primary group (the other entries may change);
- the login user's shell (the programs and libraries: /bin, /sbin, /lib*, /usr but
  /usr/local, the loader's /etc/ld.so.*), its home folder itself, ``.ssh`` and the shell's
  start-up files (``.bashrc``, ``.profile`` ..., /etc/bash.bashrc, /etc/profile); TCP
  wrappers' /etc/hosts.allow and hosts.deny; /etc/nologin for a user who is not root;
- sudo's files and the login user's groups, only where it logs in as a user and uses sudo.

``--allow PATH`` lifts what is said of files under PATH (a throwaway VM's owner allows more):
such a change is tried as sshd's configuration is, only where a second login still opens.
"""

from __future__ import annotations

import contextlib
import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

#: Where a login's programs, libraries and loader live (shared with the simulator's machine)
_SYSTEM = re.compile(r"^/(?:s?bin|lib\w*)(?:/|$)|^/usr(?:/(?!local(?:/|$))|$)|^/etc/ld\.so\.")
#: sshd's configuration: tried only where a second login opens with the change
_SSHD_CONFIG = re.compile(r"^/etc/ssh/sshd_config(?:\.d(?:/[^/]+)?)?$")
#: The accounts a login looks up (whole files: never; an entry: unless the login's own)
ACCOUNT_FILES = ("/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow")
#: Processes and services a login needs: sshd, PAM's session services, the name service
WAY_IN_PROGRAMS = frozenset(
    {"sshd", "sshd-session", "sshd-auth", "systemd", "init", "systemd-logind",
     "systemd-userdbd", "dbus-daemon", "dbus-broker", "nscd", "sssd", "nslcd", "unscd"}
)  # fmt: skip
WAY_IN_SERVICES = frozenset(
    {"ssh", "sshd", "openssh-server", "dbus", "systemd-logind", "nscd", "sssd", "nslcd"}
)
#: The shell's start-up files a command run over SSH reads, in the login's home
_STARTUP = (".bashrc", ".bash_profile", ".bash_login", ".profile", ".zshenv", ".mkshrc")


class Unresolved(Exception):
    """A path whose real path on the VM could not be found (the message says why)."""


def normalised(path: str) -> str:
    """``path`` written plainly: repeated slashes one, ``.`` and ``..`` segments taken out
    (``/etc//ssh``, ``/etc/ssh/../ssh``, ``/etc/./ssh`` are ``/etc/ssh``). As written, not as
    the VM's symbolic links make it."""
    return posixpath.normpath(re.sub("/+", "/", path))


def under(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or inside it (both written plainly)."""
    folder = folder.rstrip("/") or "/"
    return path == folder or path.startswith(folder + "/") or folder == "/"


@dataclass(frozen=True)
class Login:
    """How the grader logs in to the VM it proves on."""

    user: str = "root"
    sudo: bool = False  # commands through sudo -n (a user who is not root)
    port: int = 22


@dataclass(frozen=True)
class WayIn:
    """What a login of the grader's needs on one VM (see the module's docstring)."""

    login: Login = field(default_factory=Login)
    home: str = "/root"  # the login user's
    group: str = "root"  # its primary group
    groups: tuple[str, ...] = ("root",)  # every group it is in
    #: PAM's sshd stack as the VM has it (None: not learned; every file of /etc/pam.d is kept)
    pam: tuple[str, ...] | None = None
    pam_env: bool = True  # the stack has pam_env (which reads /etc/environment ...)
    allowed: tuple[str, ...] = ()  # --allow: folders or files the VM's owner allows

    def _path(self, plain: str) -> str | None:
        """Why the file ``plain`` is the way in (None: it is not)."""
        user, home = self.login.user, normalised(self.home)
        if _SSHD_CONFIG.search(plain):
            return None  # tried with a second login (``checked``)
        if under(plain, "/etc/ssh"):
            return "sshd's keys and folder"
        if _SYSTEM.search(plain):
            return "the programs and libraries a login runs"
        if plain == "/etc/nsswitch.conf":
            return "the name service a login asks"
        if plain in ACCOUNT_FILES[:3]:
            return f"the accounts a login looks up (whole: {user}'s entry in it)"
        if plain in ("/etc/hosts.allow", "/etc/hosts.deny"):
            return "TCP wrappers, asked at each connection"
        pam = self.pam
        if (pam is None and under(plain, "/etc/pam.d")) or (pam and plain in pam):
            return "PAM's sshd stack"
        if under(plain, "/etc/security"):
            return "the configuration of PAM's modules"
        if self.pam_env and plain in ("/etc/environment", "/etc/default/locale"):
            return "pam_env's files, read in PAM's sshd stack"
        if plain in ("/etc/bash.bashrc", "/etc/profile"):
            return "the shell's start-up files"
        if plain == home or under(plain, posixpath.join(home, ".ssh")):
            return f"{user}'s home and keys"
        if posixpath.dirname(plain) == home and posixpath.basename(plain) in _STARTUP:
            return f"{user}'s shell start-up files"
        if user != "root" and plain in ("/etc/nologin", "/run/nologin"):
            return "pam_nologin turns away every user but root while it is there"
        if self.login.sudo and (plain == "/etc/sudoers" or under(plain, "/etc/sudoers.d")):
            return "sudo's rules, which every command of the grader's goes through"
        return None

    def _touched(self, touched: str) -> str | None:
        """Why one of a mutant's ``touches`` ("user:NAME" ...) is the way in."""
        kind, _, name = touched.partition(":")
        login = self.login
        if kind == "port" and name == str(login.port):
            return f"sshd listens on port {login.port}"
        if kind == "process" and name in WAY_IN_PROGRAMS:
            return f"{name} is what a login needs"
        if kind == "service" and name.removesuffix(".service") in WAY_IN_SERVICES:
            return f"the service {name} is what a login needs"
        if kind == "user" and name == login.user:
            return f"{name} is the user the grader logs in as"
        if kind == "group" and (
            name == self.group or (login.sudo and name in self.groups)
        ):  # fmt: skip
            return f"{name} is a group of {login.user}, the user the grader logs in as"
        if kind == "member" and login.sudo and name.split(":", 1)[0] == login.user:
            return f"{login.user}'s groups may be what lets it use sudo"
        return None

    def allows(self, plain: str) -> bool:
        return any(under(plain, normalised(a)) for a in self.allowed)

    def why(self, mutant: Mutantlike, resolve: Callable[[str], str] | None = None) -> str | None:
        """Why ``mutant`` would cut the grader's own way in (None: it would not). Its path is
        tested written plainly and, with ``resolve`` (raising Unresolved), as the VM
        resolves it; a path that cannot be resolved is the way in, for all one knows."""
        for touched in mutant.touches:
            reason = self._touched(touched)
            if reason:
                return f"it would cut the grader's own way in ({reason})"
        if mutant.port == self.login.port:
            return "it would cut the grader's own way in (sshd)"
        if not mutant.path:
            return None
        plain = normalised(mutant.path)
        if not plain.startswith("/"):
            return (
                f"{mutant.path} is not an absolute path: where it leads depends on the "
                "login's folder, which may be the grader's own way in"
            )
        entry = plain in ACCOUNT_FILES and bool(mutant.touches)  # one entry, judged above
        shown = mutant.path if plain == mutant.path else f"{mutant.path}, that is {plain},"
        reason = None if entry or self.allows(plain) else self._path(plain)
        if reason:
            return f"it would cut the grader's own way in ({shown}: {reason})"
        if resolve is None:
            return None
        try:
            real = normalised(resolve(mutant.path))
        except Unresolved as e:
            return (
                f"the real path of {mutant.path} on the VM could not be found ({e}): it "
                "may lead to a file the grader's own way in reads"
            )
        reason = None if real == plain or entry or self.allows(real) else self._path(real)
        if reason:
            return (
                f"it would cut the grader's own way in ({mutant.path} is {real} on the VM: "
                f"{reason})"
            )
        return None

    def checked(self, mutant: Mutantlike, resolve: Callable[[str], str] | None = None) -> bool:
        """``mutant`` is tried only where a second login still opens with it: sshd's
        configuration, and what ``--allow`` lifted that would otherwise be the way in."""
        if not mutant.path:
            return False
        paths = [normalised(mutant.path)]
        if resolve is not None:
            with contextlib.suppress(Unresolved):
                paths.append(normalised(resolve(mutant.path)))
        return any(
            _SSHD_CONFIG.search(p) or (self.allows(p) and self._path(p) is not None) for p in paths
        )


class Mutantlike(Protocol):
    @property
    def path(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def touches(self) -> tuple[str, ...]: ...


#: How the pam stack names another file it takes lines from
_INCLUDE = re.compile(r"^\s*(?:@include\s+(\S+)|-?\w+\s+(?:include|substack)\s+(\S+))", re.M)


def pam_stack(text: Callable[[str], str | None], service: str = "sshd") -> tuple[str, ...] | None:
    """The files of PAM's ``service`` stack, its includes followed (``text``: a file's text
    on the VM, None when it is not there); None when the service's own file is not there (a
    PAM of another layout: every file of /etc/pam.d is kept then)."""
    first = f"/etc/pam.d/{service}"
    if text(first) is None:
        return None
    found: list[str] = []
    waiting = [first]
    while waiting and len(found) < 50:
        path = waiting.pop(0)
        if path in found:
            continue
        found.append(path)
        for match in _INCLUDE.finditer(text(path) or ""):
            name = match.group(1) or match.group(2)
            waiting.append(name if name.startswith("/") else f"/etc/pam.d/{name}")
    return (*found, "/etc/pam.d/other")


def way_in(
    login: Login,
    text: Callable[[str], str | None],
    entry: Callable[[str, str], Sequence[str] | None],
    groups_of: Callable[[str], Sequence[str]],
    allowed: Sequence[str] = (),
) -> WayIn:
    """What a login as ``login`` needs on the VM whose files ``text`` gives, whose account
    databases ``entry`` reads (("passwd", name) -> its fields) and whose ``groups_of`` a
    user are known."""
    account = entry("passwd", login.user)
    home = account[5] if account and len(account) > 6 and account[5] else "/root"
    group = login.user
    if account and len(account) > 3:
        primary = [g for g in groups_of(login.user)[:1]]
        group = primary[0] if primary else account[3]
    stack = pam_stack(text)
    has_env = stack is None or any("pam_env" in (text(p) or "") for p in stack)
    return WayIn(login, home, group, tuple(groups_of(login.user)), stack, has_env,
                 tuple(allowed))  # fmt: skip
