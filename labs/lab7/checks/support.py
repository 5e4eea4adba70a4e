"""What the Lab 7 checks share: reading DNS answers, named's own configuration, Apache's
configuration and pages.

The verdicts are decided on what the VM really serves (a DNS question, a page, from outside);
the inside view (named's configuration and what named-checkzone says of the zone file, Apache's
effective configuration) is read to say *why*, and is kept as evidence.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from grader.toolkit import OutputLimit, note, number, unreadable

#: A zone's serial: an unsigned 32-bit number (RFC 1982)
LARGEST_SERIAL = 2**32 - 1


def records(answer: Any, rtype: str) -> list[str]:
    """The data of the answer's records of one type (``www.z. 300 IN A 1.2.3.4`` -> 1.2.3.4)."""
    return [data for _, data in named_records(answer, rtype)]


def named_records(answer: Any, rtype: str) -> list[tuple[str, str]]:
    """(owner, data) of the answer's records of one type."""
    found = []
    for line in answer.answer:
        fields = line.split(None, 4)
        if len(fields) == 5 and fields[3].upper() == rtype.upper():
            found.append((fields[0].lower(), fields[4]))
    return found


def ask(outside: Any, name: str, rtype: str) -> Any:
    """A DNS question to the VM; a lost mark when nothing answers (the answer says why)."""
    answer = outside.dns(name, rtype)
    assert answer.ok, f"no DNS answer from the VM for {name} {rtype}: {answer.text}"
    return answer


# ----- named's configuration, as named itself reads it -----


@dataclass(frozen=True)
class NamedConfig:
    """What ``named-checkconf -p`` prints (the whole configuration, includes resolved), in
    the parts the checks use."""

    zones: dict[str, str]  # zone name -> its file (absolute)
    allow_query: str | None  # the options' allow-query list, as written
    zone_allow_query: dict[str, str]  # a zone's own allow-query
    listen_on: str | None
    error: str = ""  # when named-checkconf refused the configuration: why


def named_config(host: Any) -> NamedConfig | None:
    """named's configuration as named reads it; None when named-checkconf is not there."""
    result = host.run("named-checkconf -p")
    if result.rc == 127:
        return None
    text = result.stdout
    if result.rc != 0:
        said = (result.stdout + result.stderr).strip().splitlines()
        return NamedConfig({}, None, {}, None, said[0] if said else f"exit {result.rc}")
    directory = _first(r'^\s*directory\s+"([^"]*)"', text) or "/var/cache/bind"
    zones, own = {}, {}
    for name, body in _blocks(text, r'^zone\s+"([^"]+)"[^{]*\{'):
        file = _first(r'^\s*file\s+"([^"]*)"', body)
        if file:
            zones[name.rstrip(".").lower()] = posixpath.join(directory, file)
        allow = _list(r"allow-query", body)
        if allow is not None:
            own[name.rstrip(".").lower()] = allow
    options = next((body for _, body in _blocks(text, r"^(options)\s*\{")), "")
    return NamedConfig(zones, _list("allow-query", options), own, _list("listen-on", options))


def _first(pattern: str, text: str) -> str | None:
    found = re.search(pattern, text, re.MULTILINE)
    return found.group(1) if found else None


def _blocks(text: str, opening: str) -> Iterator[tuple[str, str]]:
    """(the name the opening captured, the block's body) of each top-level block."""
    for found in re.finditer(opening, text, re.MULTILINE):
        depth, end = 1, found.end()
        while depth and end < len(text):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            end += 1
        yield found.group(1), text[found.end() : end - 1]


def _list(keyword: str, body: str) -> str | None:
    """An address match list (``allow-query { localhost; };``) as one line, or None."""
    found = re.search(rf"^\s*{keyword}\s*(?:port\s+\d+\s*)?\{{(.*?)\}};", body, re.S | re.M)
    return " ".join(found.group(1).replace('"', "").split()) if found else None


@dataclass(frozen=True)
class ZoneCheck:
    """What ``named-checkzone`` says of a zone file."""

    path: str
    loads: bool
    serial: int | None
    said: str  # its first line of complaint, when it does not load


def check_zone(host: Any, zone: str, path: str) -> ZoneCheck:
    """named-checkzone on the zone file: its output is evidence and explains a verdict, never
    decides one (named may serve another version than the file)."""
    try:
        result = host.run("named-checkzone %s %s", zone, path)
    except OutputLimit:  # it only explains: the verdict stands, without its word
        note(f"named-checkzone said more of {path} than the grader keeps: not used to say why")
        return ZoneCheck(path, True, None, "")
    lines = (result.stdout + "\n" + result.stderr).splitlines()
    said = next((line for line in lines if "loaded serial" in line), None)
    serial = None
    if said is not None:
        words = said.split("loaded serial", 1)[1].split()
        serial = number(words[0], LARGEST_SERIAL) if words else None
        if serial is None:
            note(f"named-checkzone's line {said[:120]!r} gives no serial the grader can read")
    complaint = next(
        (line.strip() for line in lines if line.strip() and "loaded serial" not in line
         and line.strip() != "OK"),
        "",
    )  # fmt: skip
    return ZoneCheck(path, result.rc == 0, serial, complaint[:300])


def zone_file(host: Any, lab: Any, zone: str) -> str:
    """The zone's file as named's own configuration names it (the lab's usual place when
    named's configuration cannot be read)."""
    config = named_config(host)
    if config is not None and zone in config.zones:
        return config.zones[zone]
    return f"{lab.paths.zone_dir.rstrip('/')}/db.{zone}"


def why_not_served(host: Any, lab: Any, answer: Any, name: str, zone: str) -> str:
    """What named's configuration and the zone file say of an answer without the record."""
    config = named_config(host)
    if answer.rcode == "REFUSED":
        if config is not None and zone in config.zones:
            allowed = config.zone_allow_query.get(zone) or config.allow_query
            if allowed is not None and not re.search(r"\bany\b", allowed):
                return (
                    f"named refused to answer for {name}: allow-query {{ {allowed} }} keeps "
                    "out everyone else (the grader asks from outside the VM): allow-query "
                    "{ any; }"
                )
        return (
            f"named refused to answer for {name}: it does not serve the zone {zone} (a zone "
            "statement in named.conf.local?)"
        )
    checked = check_zone(host, zone, zone_file(host, lab, zone))
    if not checked.loads:
        return (
            f"the zone file {checked.path} does not load (named-checkzone: {checked.said}), "
            f"so named serves {'no zone' if answer.rcode == 'SERVFAIL' else 'the zone as it was'}"
            f" ({answer.rcode}): fix the file, then rndc reload {zone}"
        )
    if answer.rcode == "SERVFAIL":
        return f"named could not load the zone {zone} (SERVFAIL): see its log"
    if checked.serial is not None:
        return (
            f"{name} has no such record in the zone named serves ({answer.rcode}); the zone "
            f"file {checked.path} (serial {checked.serial}) loads: if the record is there, "
            f"bump the serial and rndc reload {zone}"
        )
    return f"{name} has no such record in the zone named serves ({answer.rcode})"


def served(host: Any, lab: Any, answer: Any, name: str, rtype: str, zone: str) -> None:
    """Fail, saying why, when the VM's answer holds no record of ``rtype`` for ``name``."""
    if records(answer, rtype):
        return
    raise AssertionError(why_not_served(host, lab, answer, name, zone))


# ----- Apache's effective configuration -----

#: The directives whose lines are read of each configuration file (the rest never matter here)
DIRECTIVES = r"^[[:space:]]*(<|Options|AllowOverride|DocumentRoot|ServerName|ServerAlias|Include)"
#: Every file Apache reads (DUMP_INCLUDES, in order, with the line that includes it), then
#: each file's directive lines, numbered (symlinked sites are read where they point)
APACHE_FILES = (
    "apache2ctl -t -D DUMP_INCLUDES 2>/dev/null; "
    "apache2ctl -t -D DUMP_INCLUDES 2>/dev/null | sed -n 's/^ *([^)]*) //p' | "
    'while read -r f; do printf \'@@file %%s\\n\' "$f"; r=$(readlink -f -- "$f"); '
    '[ -f "$r" ] && grep -n -a -i -E -e %s -- "$r" | head -c 262144; done'
)
OPTIONS_ALL = {"Indexes", "Includes", "FollowSymLinks", "SymLinksIfOwnerMatch", "ExecCGI"}


@dataclass(frozen=True)
class Directive:
    name: str  # lower case
    args: str
    where: str  # file:line
    sections: tuple[
        tuple[str, str], ...
    ]  # the enclosing sections (kind, argument), outermost first


@dataclass
class ApacheConfig:
    directives: list[Directive] = field(default_factory=list)
    modules: set[str] = field(default_factory=set)  # loaded: "autoindex_module" ...


def apache_config(host: Any) -> ApacheConfig | None:
    """Apache's configuration as Apache reads it (every included file, in order); None when
    apache2ctl is not there or cannot read it (then only the pages decide)."""
    listed = host.run(APACHE_FILES, DIRECTIVES)
    if listed.rc == 127 or "Included configuration files" not in listed.stdout:
        return None
    tree, lines = _includes(listed.stdout)
    config = ApacheConfig()
    _walk(tree, lines, config, [], [])
    modules = host.run("apache2ctl -M 2>/dev/null")
    config.modules = {line.split()[0] for line in modules.stdout.splitlines()[1:] if line.split()}
    return config


def _includes(text: str) -> tuple[list[Any], dict[str, list[tuple[int, str]]]]:
    """DUMP_INCLUDES' tree ([(line in parent, path, children)]) and each file's lines."""
    head, _, files = text.partition("@@file ")
    root: list[Any] = []
    stack: list[tuple[int, list[Any]]] = [(-1, root)]
    what = "apache2ctl -t -D DUMP_INCLUDES"
    for n, line in enumerate(head.split("\n"), start=1):
        found = re.match(r"^(\s*)\(([^)]*)\) (.+)$", line)
        if not found:
            continue
        at = 0 if found.group(2) == "*" else number(found.group(2))
        if at is None:
            raise unreadable(what, n, line, "(LINE) FILE, the line * or in digits 0-9")
        depth = len(found.group(1))
        while stack and stack[-1][0] >= depth:
            stack.pop()
        node = (at, found.group(3).strip(), [])
        stack[-1][1].append(node)
        stack.append((depth, node[2]))
    lines: dict[str, list[tuple[int, str]]] = {}
    for chunk in ("@@file " + files).split("\n@@file ")[:500]:
        name, _, body = chunk.removeprefix("@@file ").partition("\n")
        numbered = []
        for n, row in enumerate(body.split("\n"), start=1):
            if not row:
                continue
            found, _, rest = row.partition(":")
            at = number(found)
            if at is None:
                what = f"reading Apache's configuration file {name.strip()}"
                raise unreadable(what, n, row, "NUMBER:LINE, in digits 0-9 (grep -n)")
            numbered.append((at, rest))
        lines[name.strip()] = numbered
    return root, lines


def _walk(
    nodes: list[Any], lines: dict[str, list[tuple[int, str]]], config: ApacheConfig,
    sections: list[tuple[str, str]], seen: list[str],
) -> None:  # fmt: skip
    for _, path, children in nodes:
        if path in seen or len(seen) > 20:
            continue  # an include loop: Apache refuses it, and so does this
        by_line: dict[int, list[Any]] = {}
        for child in children:
            by_line.setdefault(child[0], []).append(child)
        for at, text in lines.get(path, []):
            stripped = text.strip()
            where = f"{path}:{at}"
            closing = re.match(r"^</\s*([A-Za-z]+)", stripped)
            opening = re.match(r"^<\s*([A-Za-z]+)\s*([^>]*)>", stripped)
            if closing:
                if sections:
                    sections.pop()
            elif opening:
                sections.append((opening.group(1).lower(), opening.group(2).strip().strip('"')))
            else:
                name, _, args = stripped.partition(" ")
                config.directives.append(
                    Directive(name.lower(), args.strip(), where, tuple(sections))
                )
            if at in by_line:
                _walk(by_line[at], lines, config, sections, [*seen, path])


def _matches(name: str, host_name: str) -> bool:
    pattern = re.escape(name.lower()).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(pattern, host_name.lower()) is not None


def vhost_for(config: ApacheConfig, host_name: str) -> tuple[str, str] | None:
    """The <VirtualHost> section (its argument, where it starts) that answers ``host_name`` on
    port 80: the first whose ServerName or ServerAlias matches, else the first one (Apache's
    default for the address); None when there is none."""
    hosts: dict[tuple[str, str], list[str]] = {}
    order: list[tuple[str, str]] = []
    for d in config.directives:
        vhost = next((s for s in d.sections if s[0] == "virtualhost"), None)
        if vhost is None:
            continue
        key = (vhost[1], d.where.rsplit(":", 1)[0])
        if key not in hosts:
            hosts[key] = []
            order.append(key)
        if d.name in ("servername", "serveralias"):
            hosts[key] += d.args.split()
    for key in order:
        if any(_matches(n.split(":")[0], host_name) for n in hosts[key]):
            return key
    return order[0] if order else None


def _in_vhost(d: Directive, vhost: tuple[str, str] | None) -> bool | None:
    """True in that vhost, False in another, None outside every vhost (the server's)."""
    inside = next((s for s in d.sections if s[0] == "virtualhost"), None)
    if inside is None:
        return None
    return vhost is not None and inside[1] == vhost[0] and d.where.startswith(vhost[1] + ":")


def document_root(config: ApacheConfig, vhost: tuple[str, str] | None) -> str:
    root = "/var/www/html"
    for d in config.directives:
        inside = any(s[0] in ("directory", "location") for s in d.sections)
        if d.name == "documentroot" and _in_vhost(d, vhost) in (None, True) and not inside:
            root = d.args.strip('"').rstrip("/") or "/"
    return root


@dataclass(frozen=True)
class Indexes:
    on: bool
    because: str  # the directive (file:line) that decided, in words


def _apply(current: set[str], args: str) -> set[str]:
    words = args.split()
    if words and all(w[0] in "+-" for w in words):
        changed = set(current)
        for w in words:
            name = _option(w[1:])
            names = OPTIONS_ALL if name == "All" else {name}
            changed = changed | names if w[0] == "+" else changed - names
        return changed
    found: set[str] = set()
    for w in words:
        name = _option(w.lstrip("+"))
        if name == "All":
            found |= OPTIONS_ALL
        elif name != "None":
            found.add(name)
    return found


def _option(word: str) -> str:
    known = {o.lower(): o for o in (*OPTIONS_ALL, "All", "None", "MultiViews", "IncludesNOEXEC")}
    return known.get(word.lower(), word)


def indexes_for(
    config: ApacheConfig, host_name: str, path: str, htaccess: Sequence[tuple[str, str]] = ()
) -> Indexes:
    """Whether Apache lists the folder that ``path`` (a URL path: /files/) maps to for
    ``host_name``: its Options as Apache merges them (server, virtual host, <Directory>
    sections from the shortest path on, .htaccess where AllowOverride lets it, <Location>).
    ``htaccess``: (folder, its Options lines) the checks read."""
    if "autoindex_module" not in config.modules:
        return Indexes(False, "mod_autoindex is not loaded (a2dismod autoindex)")
    vhost = vhost_for(config, host_name)
    folder = posixpath.normpath(document_root(config, vhost) + "/" + path.strip("/"))
    options, because = {"FollowSymLinks"}, "Apache's default (no Indexes)"
    overrides = "None"
    context = [d for d in config.directives if _in_vhost(d, vhost) in (None, True)]
    for d in context:  # the server's, then the virtual host's: outside any section
        if d.name == "options" and not any(s[0] != "virtualhost" for s in d.sections):
            options, because = _apply(options, d.args), f"{d.where}: Options {d.args}"
    sections = []
    for d in context:
        inside = [s for s in d.sections if s[0] != "virtualhost" and s[0] != "ifmodule"]
        if len(inside) == 1 and inside[0][0] == "directory" and not inside[0][1].startswith("~"):
            where = posixpath.normpath(inside[0][1]) if inside[0][1] != "/" else "/"
            if folder == where or folder.startswith(where.rstrip("/") + "/"):
                sections.append((len([p for p in where.split("/") if p]), d))
    for _, d in sorted(sections, key=lambda s: s[0]):  # stable: config order among equals
        if d.name == "options":
            options, because = _apply(options, d.args), f"{d.where}: Options {d.args}"
        elif d.name == "allowoverride":
            overrides = d.args
    allowed = re.search(r"\b(All|Options)\b", overrides, re.IGNORECASE) is not None
    for where, lines in htaccess:
        if allowed and (folder == where or folder.startswith(where.rstrip("/") + "/")):
            for line in lines.splitlines():
                name, _, args = line.strip().partition(" ")
                if name.lower() == "options":
                    options = _apply(options, args)
                    because = f"{where}/.htaccess: Options {args}"
    for d in context:
        inside = [s for s in d.sections if s[0] != "virtualhost" and s[0] != "ifmodule"]
        if len(inside) == 1 and inside[0][0] == "location" and d.name == "options":
            prefix = inside[0][1].rstrip("/")
            if ("/" + path.strip("/")).startswith(prefix or "/"):
                options, because = _apply(options, d.args), f"{d.where}: Options {d.args}"
    return Indexes("Indexes" in options, because)
