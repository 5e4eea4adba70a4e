"""One SSH connection per host: trust on first use, clear failures, bounded commands.

Host keys are kept in the grader's own known-hosts file (OpenSSH format), not the user's
~/.ssh/known_hosts: the first key a host shows is stored, and a different key later refuses to
grade (``HostError('host_key_changed')``) unless the user accepts the change.
"""

from __future__ import annotations

import base64
import hashlib
import os
import select
import shlex
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paramiko

from grader.base.budget import SLICE
from grader.base.errors import CommandTimeout, HostError, InputError
from grader.base.words import ErrorKind
from grader.machine.execution import COMMAND_OUTPUT_LIMIT, Completed, Target

#: Seconds a VM that greeted may take to accept the key (at least; --connect-timeout if longer)
AUTH_TIMEOUT = 20.0
#: Seconds a VM may take to open a channel for a command (at least; the command's if longer)
CHANNEL_TIMEOUT = 15.0


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint of a public key, e.g. ``SHA256:nThbg6kXUpJW...``."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class KnownHosts:
    """The grader's own known-hosts file, shared safely by concurrent connections. A changed
    key is accepted only for the hosts named in ``accept_changed``."""

    def __init__(self, path: Path, accept_changed: frozenset[str] = frozenset()) -> None:
        self.path = path
        self.accept_changed = accept_changed
        self._lock = threading.Lock()

    def verify(self, name: str, key: paramiko.PKey) -> str | None:
        """Trust ``key`` for host ``name`` or raise HostError. Returns the fingerprints of the
        key(s) it replaced when a changed key was accepted, else None."""
        with self._lock:
            keys = paramiko.HostKeys()
            if self.path.exists():
                try:
                    keys.load(str(self.path))
                except OSError as e:
                    raise InputError(
                        f"{self.path}: cannot read known hosts: {e.strerror}"
                    ) from None
            stored = keys.lookup(name)
            replaced = None
            if stored is not None:
                if any(k.asbytes() == key.asbytes() for k in stored.values()):
                    return None
                old = ", ".join(f"{t} {fingerprint(k)}" for t, k in stored.items())
                if name not in self.accept_changed:
                    raise HostError(
                        "host_key_changed",
                        f"the host key of {name} changed: it was {old}, now it is "
                        f"{key.get_name()} {fingerprint(key)}; if the VM was rebuilt, grade again "
                        f"with --accept-changed-host-key {name} (known hosts: {self.path})",
                    )
                del keys[name]
                replaced = old
            keys.add(name, key.get_name(), key)
            self._save(keys)
            return replaced

    def _save(self, keys: paramiko.HostKeys) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".known_hosts.")
        os.close(fd)
        try:
            keys.save(tmp)
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


class _VerifyPolicy(paramiko.MissingHostKeyPolicy):
    """The client holds no host keys, so every key comes here and is checked against ours."""

    def __init__(self, known_hosts: KnownHosts) -> None:
        self.known_hosts = known_hosts
        self.replaced: str | None = None  # the key(s) a changed key replaced, when accepted

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        self.replaced = self.known_hosts.verify(hostname, key)


def load_identity(path: Path) -> paramiko.PKey:
    """Read a private key file, or raise an InputError that says what is wrong with it."""
    try:
        return paramiko.PKey.from_path(str(path))
    except FileNotFoundError:
        raise InputError(f"{path}: identity file does not exist") from None
    except PermissionError:
        raise InputError(f"{path}: identity file is not readable") from None
    except IsADirectoryError:
        raise InputError(f"{path}: identity file is a directory") from None
    except paramiko.PasswordRequiredException:
        raise InputError(
            f"{path}: identity file is protected by a passphrase; load it into ssh-agent instead"
        ) from None
    except (paramiko.SSHException, ValueError, OSError) as e:
        raise InputError(f"{path}: not a usable private key: {e}") from None


class Session:
    """An authenticated SSH connection to one host."""

    grows = True  # exec takes ``grow``: an answer may be given more room as it is read

    def __init__(
        self,
        client: paramiko.SSHClient,
        address: str,
        host_key: str,
        replaced_key: str | None = None,
        sudo: bool = False,
    ) -> None:
        self.sudo = sudo  # every command through `sudo -n` (the user is not root)
        self.client = client
        self.address = address  # the IP address the host name resolved to
        self.host_key = host_key  # fingerprint of the key the host showed
        self.replaced_key = replaced_key  # the stored key it replaced (accepted as changed)

    def close(self) -> None:
        self.client.close()

    def exec(
        self,
        command: bytes,
        timeout: float,
        limit: int = COMMAND_OUTPUT_LIMIT,
        cancel: threading.Event | None = None,
        grow: Callable[[], int] | None = None,
    ) -> Completed:
        """Run one command; raise CommandTimeout past ``timeout`` seconds or when ``cancel``
        is set. The read loop takes one chunk at a time and looks at its bounds after each,
        so a VM that floods the channel is cut off at the limit, not after it. When the output
        passes ``limit``, ``grow`` (if given) may give it more: it may wait (for its class's
        room), and that wait is not the command's time."""
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise HostError(
                ErrorKind.CONNECTION_LOST, f"the SSH connection to {self.address} was lost"
            )
        try:
            # opening a channel is the connection's part, not the command's: a VM busy with
            # a class's logins may take longer than a short --command-timeout to answer it
            chan = transport.open_session(timeout=max(timeout, CHANNEL_TIMEOUT))
        except (paramiko.SSHException, EOFError, OSError) as e:
            raise HostError(
                "connection_lost", f"the SSH connection to {self.address} was lost: {e}"
            ) from None
        ends = time.monotonic() + timeout
        out, err = bytearray(), bytearray()
        truncated = False
        if self.sudo:  # the same command, as root; -n: never wait for a password
            command = b"sudo -n -- sh -c " + shlex.quote(
                command.decode("utf-8", "surrogateescape")
            ).encode("utf-8", "surrogateescape")
        with chan:
            chan.exec_command(command)
            chan.shutdown_write()  # no stdin: a command that reads it sees end of file
            while True:
                if chan.recv_ready():
                    out += chan.recv(65536)
                if chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                if len(out) > limit or len(err) > limit:
                    asked = time.monotonic()
                    more = grow() if grow is not None else limit
                    ends += time.monotonic() - asked
                    if more > limit:
                        limit = more
                        continue
                    truncated = True
                    break
                remaining = ends - time.monotonic()
                if remaining <= 0 or (cancel is not None and cancel.is_set()):
                    raise CommandTimeout(f"no answer within {timeout:g} s")
                # Done when the output has ended (EOF) and is all read, and the exit status is
                # in. sshd may send the exit status while output is still on its way (the
                # command exited with its last bytes in the pipe): the status alone is not the
                # end, and stopping there cut large outputs short now and then.
                drained = not (chan.recv_ready() or chan.recv_stderr_ready())
                if drained and chan.eof_received and chan.exit_status_ready():
                    break
                if drained and chan.closed:  # closed without an exit status: killed, or lost
                    if not transport.is_active():
                        raise HostError(
                            "connection_lost", f"the SSH connection to {self.address} was lost"
                        )
                    break
                if drained:
                    select.select([chan], [], [], min(remaining, SLICE))
            status = chan.recv_exit_status() if chan.exit_status_ready() else -1
        return Completed(status, _first(out, limit), _first(err, limit), truncated)


def _first(data: bytearray, limit: int) -> bytes:
    """The first ``limit`` bytes, copied once (``bytes(data[:limit])`` copies twice: up to 16 MiB
    more held for a moment, by each of a class's gradings)."""
    with memoryview(data) as view:
        return bytes(view[:limit])


def connect(target: Target, known_hosts: KnownHosts, timeout: float) -> Session:
    """Open and authenticate one SSH connection, or raise HostError saying why not."""
    pkey = load_identity(target.identity) if target.identity else None
    where = f"{target.host}:{target.port}"
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise HostError(
            "unreachable", f"cannot resolve host name {target.host!r}: {e.strerror}"
        ) from None
    address = str(infos[0][4][0])
    try:
        sock = socket.create_connection((address, target.port), timeout=timeout)
    except TimeoutError:
        raise HostError(
            "timeout", f"{where}: no answer to the TCP connection within {timeout:g} s"
        ) from None
    except ConnectionRefusedError:
        raise HostError(
            ErrorKind.UNREACHABLE, f"{where}: connection refused (is sshd running?)"
        ) from None
    except OSError as e:
        raise HostError(ErrorKind.UNREACHABLE, f"{where}: {e.strerror or e}") from None

    client = paramiko.SSHClient()
    policy = _VerifyPolicy(known_hosts)
    client.set_missing_host_key_policy(policy)
    try:
        client.connect(
            hostname=target.host,  # the name host keys are stored under
            port=target.port,
            username=target.user,
            password=target.password,
            pkey=pkey,
            sock=sock,
            timeout=timeout,
            banner_timeout=timeout,
            # a VM that answered but is slow to check a key (its CPU busy with a class's
            # logins) is given longer than --connect-timeout; the host's deadline still holds
            auth_timeout=max(timeout, AUTH_TIMEOUT),
            allow_agent=pkey is None,
            look_for_keys=pkey is None,
        )
    except HostError:
        client.close()
        raise
    except paramiko.AuthenticationException as e:
        client.close()
        if "timeout" in str(e).lower():  # paramiko's auth_timeout: no answer, not a refusal
            raise HostError(
                "timeout",
                f"{where}: no answer to authentication within {max(timeout, AUTH_TIMEOUT):g} s",
            ) from None
        tried = "the key " + str(target.identity) if pkey else "the default keys and ssh-agent"
        if target.password:
            tried += " and the password"
        raise HostError(
            "auth_failed",
            f"{where}: authentication refused for user {target.user!r} (tried {tried}): {e}",
        ) from None
    except (paramiko.SSHException, EOFError, OSError) as e:
        transport = client.get_transport()
        greeted = transport is not None and bool(transport.remote_version)
        client.close()
        message = str(e) or type(e).__name__
        if not greeted or isinstance(e, TimeoutError):  # the server never said "SSH-2.0-..."
            raise HostError(
                "timeout",
                f"{where}: no SSH greeting within {timeout:g} s "
                f"(the port answers but it is not speaking SSH)",
            ) from None
        raise HostError(ErrorKind.UNREACHABLE, f"{where}: SSH failed: {message}") from None
    transport = client.get_transport()
    assert transport is not None
    key = fingerprint(transport.get_remote_server_key())
    return Session(client, address, key, policy.replaced, target.sudo)
