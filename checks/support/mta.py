"""The mail transfer agent as the checks see it: its daemon's processes and its queues."""

from __future__ import annotations

from typing import Any

from grader.toolkit import Process, listdir, processes, read_lines

SUPER_SERVERS = ("inetd", "xinetd")
QUEUE_FILE_PREFIXES = ("qf", "Qf", "hf")  # sendmail's control files: one per waiting message
#: The folders of sendmail's client queue (mail submitted by `mail`, before the MTA takes it)
CLIENT_QUEUES = ("clientmqueue", "mqueue-client")

#: What a failure caused by the MTA not running says it comes from (rubric.toml's [causes])
SENDMAIL_DOWN = "sendmail_down"
#: ... and by sendmail running with a sendmail.cf older than the one on disk
SENDMAIL_NOT_RESTARTED = "sendmail_not_restarted"


def is_mta(process: Process) -> bool:
    if process.comm.startswith("sendmail"):
        return "MSP:" not in process.args  # the submission queue runner is not the MTA
    if process.comm in ("exim4", "exim"):
        return True
    return process.comm == "master" and "postfix" in process.args


def mta_processes(host: Any) -> list[Process]:
    return [p for p in processes(host).values() if is_mta(p)]


def queued(host: Any, lab: Any) -> dict[str, list[str]]:
    """The messages waiting in each mail queue folder that has any."""
    waiting = {}
    for folder in lab.paths.mail_queues:
        if host.file(folder).is_directory:
            names = [n for n in listdir(host, folder) if n.startswith(QUEUE_FILE_PREFIXES)]
            if names:
                waiting[folder] = names
    return waiting


def waits_for_the_mta(host: Any, lab: Any) -> bool:
    """Mail waits in a queue while no MTA daemon runs: a missing message may be there."""
    return not mta_processes(host) and bool(queued(host, lab))


# ----- where sendmail is told to listen on 127.0.0.1 only -----

#: What sendmail.cf and a .mc file say about the daemon's sockets (grep -E, on the VM)
_LISTEN_LINES = r"DaemonPortOptions|DAEMON_OPTIONS"
_QUOTED = 160  # characters of a VM's line quoted in a message at most


def _options(text: str) -> dict[str, str] | None:
    """The key=value options of an active listening line, None for any other line:
    ``O DaemonPortOptions=Port=smtp, Addr=127.0.0.1`` (sendmail.cf) or
    ``DAEMON_OPTIONS(`Port=smtp, Addr=127.0.0.1')dnl`` (a .mc file)."""
    line = text.strip()
    if line.startswith("O DaemonPortOptions="):
        body = line[len("O DaemonPortOptions=") :]
    elif line.startswith("DAEMON_OPTIONS(`") and "'" in line:
        body = line[len("DAEMON_OPTIONS(`") : line.index("'")]
    else:
        return None  # a comment, dnl, or something else
    options = {}
    for part in body.split(","):
        key, _, value = part.partition("=")
        options[key.strip().lower()] = value.strip()
    return options


def _limits_port_25(options: dict[str, str]) -> bool:
    """A listening line for the MTA's port 25 that binds it to a loopback address."""
    port = options.get("port", "smtp")  # sendmail's default port is smtp
    address = options.get("addr", "")
    loopback = address.startswith("127.") or address in ("::1", "localhost")
    return port in ("smtp", "25") and loopback


def _limiting(host: Any, path: str) -> list[tuple[int, str, str]] | None:
    """(line number, line, address) of each line of ``path`` that keeps port 25 on loopback;
    None when the file is not there."""
    found = read_lines(host, path, _LISTEN_LINES)
    if found is None:
        return None
    lines = []
    for number, text in found.numbered:
        options = _options(text)
        if options is not None and _limits_port_25(options):
            lines.append((number, text.strip()[:_QUOTED], options["addr"]))
    return lines


def why_loopback_only(host: Any, lab: Any) -> tuple[str, str | None]:
    """Why sendmail listens on 127.0.0.1 only, from the files on this VM: the line of
    sendmail.cf that says so and the line of the .mc file it is made from, quoted with the
    change to make; or, when sendmail.cf no longer says so, that sendmail was not restarted
    (with that cause). ("", None) when neither file is there."""
    cf = str(lab.paths.get("sendmail_cf", "/etc/mail/sendmail.cf"))  # an older rubric: these
    mc = lab.paths.get("sendmail_mc", ["/etc/mail/sendmail.mc"])
    in_cf = _limiting(host, cf)
    sources = [(path, _limiting(host, path)) for path in ([mc] if isinstance(mc, str) else mc)]
    sources = [(path, lines) for path, lines in sources if lines is not None]
    if in_cf == []:
        return (
            f"though {cf} no longer says so: the sendmail that runs was started before it "
            "changed (did you restart sendmail?)",
            SENDMAIL_NOT_RESTARTED,
        )
    said = []
    if in_cf:
        number, line, address = in_cf[0]
        said.append(f"as {cf} line {number} says (`{line}`)")
    for path, lines in sources:
        if lines:
            number, line, address = lines[0]
            said.append(
                f"made from {path} line {number}: `{line}`: remove `Addr={address}` from that "
                "line and keep the rest"
            )
            break
    else:
        if in_cf:
            found = " or ".join(path for path, _ in sources)
            said.append(
                f"{found} no longer says so: rebuild sendmail.cf from it, then restart sendmail"
                if found
                else f"remove `Addr={in_cf[0][2]}` from that line and keep the rest"
            )
    return ", ".join(said), None
