"""Running the checks' commands on this machine, for ``grade --local`` (no SSH)."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import threading
import time
from typing import Any

from grader.base.budget import SLICE
from grader.base.errors import CommandTimeout
from grader.machine.execution import COMMAND_OUTPUT_LIMIT, Completed


class LocalExecutor:
    """Runs a command with /bin/sh, as testinfra's local backend does, but bounded: in time
    (the whole process group is killed past the timeout, or when the grading is cancelled) and
    in the output kept (read as it comes, never more than the limit)."""

    address = "localhost"
    host_key = None

    def exec(
        self,
        command: bytes,
        timeout: float,
        limit: int = COMMAND_OUTPUT_LIMIT,
        cancel: threading.Event | None = None,
    ) -> Completed:
        process = subprocess.Popen(
            command,
            shell=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        ends = time.monotonic() + timeout
        streams = (process.stdout, process.stderr)
        kept = {stream: bytearray() for stream in streams}
        truncated = False
        try:
            with selectors.DefaultSelector() as selector:
                for stream in streams:
                    selector.register(stream, selectors.EVENT_READ)  # type: ignore[arg-type]
                while selector.get_map():
                    remaining = ends - time.monotonic()
                    if remaining <= 0 or (cancel is not None and cancel.is_set()):
                        raise CommandTimeout(f"no answer within {timeout:g} s")
                    for key, _ in selector.select(min(remaining, SLICE)):
                        chunk = os.read(key.fd, 65536)
                        if chunk:
                            kept[key.fileobj] += chunk  # type: ignore[index]
                        else:
                            selector.unregister(key.fileobj)
                    if any(len(data) > limit for data in kept.values()):
                        truncated = True
                        break
            if truncated:
                _kill(process)
            else:
                try:
                    process.wait(timeout=max(ends - time.monotonic(), 0.01))
                except subprocess.TimeoutExpired:
                    raise CommandTimeout(f"no answer within {timeout:g} s") from None
        except BaseException:
            _kill(process)
            raise
        finally:
            for stream in streams:
                stream.close()  # type: ignore[union-attr]
        out, err = (bytes(kept[s][:limit]) for s in streams)
        return Completed(process.returncode, out, err, truncated)


def _kill(process: subprocess.Popen[Any]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def own_address(host: Any) -> str:
    """This machine's address as the network sees it, for probing it "from outside" when
    grading locally: the first address of an interface other than loopback (IPv4 first, no
    link-local), or 127.0.0.1 when there is none. An interface that goes away while they are
    looked at (a VPN, a container's) is passed over."""
    found: list[str] = []
    for name in host.interface.names():
        if name == "lo":
            continue
        try:
            found += [a for a in host.interface(name).addresses if not a.startswith("fe80")]
        except AssertionError:  # testinfra's: it went between the list and the look (a VPN)
            continue
    found.sort(key=lambda a: ":" in a)  # IPv4 before IPv6
    return found[0] if found else "127.0.0.1"
