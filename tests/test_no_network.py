"""No network call the user did not ask for: every connect of a real export, check and predict is recorded
(strace, or a socket guard) and only loopback and local IPC are allowed."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from artifact_helpers import RUN_CLI, clean_env, export_args

# --- 3. no network call the user did not ask for ---------------------------------------------------------------


@pytest.mark.parametrize(("preset", "expected"), [(None, "1"), ("0", "0")])
def test_importing_the_runtime_disables_onnxruntime_telemetry(preset, expected):
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    if preset is not None:
        env["ORT_DISABLE_TELEMETRY"] = preset  # a user's own choice is kept
    code = "import os, edgecut.runtime; print(os.environ.get('ORT_DISABLE_TELEMETRY'))"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout == f"{expected}\n"


GUARD = """
import json, os, socket, sys
log = open(os.environ["EDGECUT_CONNECT_LOG"], "a")
def record(family, address):
    if isinstance(address, tuple):
        log.write(json.dumps([family, str(address[0]), int(address[1])]) + "\\n")
    else:
        log.write(json.dumps(["AF_UNIX", str(address), 0]) + "\\n")
    log.flush()
for name in ("connect", "connect_ex"):
    original = getattr(socket.socket, name)
    def wrapped(self, address, _original=original):
        record(socket.AddressFamily(self.family).name, address)
        return _original(self, address)
    setattr(socket.socket, name, wrapped)
getaddrinfo = socket.getaddrinfo
def lookup(host, *args, **kwargs):
    record("DNS", (host, 53))
    return getaddrinfo(host, *args, **kwargs)
socket.getaddrinfo = lookup
"""
_STRACE = re.compile(r"connect\(\d+, \{sa_family=(AF_INET6?|AF_UNIX)([^}]*)\}")


def connects(log: Path, traced_by_strace: bool) -> list[tuple[str, str, int]]:
    """(family, address, port) of every connect in a strace -e trace=connect log or a guard log."""
    if not traced_by_strace:
        return [tuple(json.loads(line)) for line in log.read_text().splitlines() if line]
    found = []
    for m in _STRACE.finditer(log.read_text()):
        family, rest = m.groups()
        if family == "AF_UNIX":
            path = re.search(r'sun_path=@?"([^"]*)"', rest)
            found.append((family, path.group(1) if path else "", 0))
            continue
        port = re.search(r"port=htons\((\d+)\)", rest)
        address = re.search(r'inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)"', rest)
        found.append((family, next(a for a in address.groups() if a) if address else "?", int(port.group(1))))
    return found


def outside(records: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    """Connections that leave the machine, and every host name lookup.

    A lookup shows as a connect to port 53 (glibc's resolver), to systemd-resolved's socket, or as a
    Python getaddrinfo call (the guard). nscd's socket is not counted: Python's getpwuid (a user name, read
    at import by torch) asks it too, and it is not running on this machine, so a lookup would show as port 53.
    """
    bad = []
    for family, address, port in records:
        if family == "AF_UNIX":
            if "systemd/resolve" in address:
                bad.append((family, address, port))
            continue
        if family == "DNS" or port == 53:
            bad.append((family, address, port))
            continue
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            bad.append((family, address, port))
            continue
        ip = getattr(ip, "ipv4_mapped", None) or ip
        if not ip.is_loopback:
            bad.append((family, address, port))
    return bad


STRACE_LINES = """\
101 connect(3, {sa_family=AF_INET, sin_port=htons(443), sin_addr=inet_addr("13.107.5.88")}, 16) = -1 EINPROGRESS
101 connect(4, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("127.0.0.53")}, 16) = 0
102 connect(5, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), \
inet_pton(AF_INET6, "2603:1030::1", &sin6_addr), sin6_scope_id=0}, 28) = -1 ENETUNREACH
102 connect(6, {sa_family=AF_UNIX, sun_path="/run/systemd/resolve/io.systemd.Resolve"}, 110) = 0
102 connect(6, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT
103 connect(7, {sa_family=AF_INET, sin_port=htons(8000), sin_addr=inet_addr("127.0.0.1")}, 16) = 0
103 connect(8, {sa_family=AF_INET6, sin6_port=htons(8000), sin6_flowinfo=htonl(0), \
inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}, 28) = 0
103 connect(9, {sa_family=AF_UNIX, sun_path="/tmp/.X11-unix/X0"}, 110) = 0
"""


def test_the_connect_log_parser_finds_what_leaves_the_machine(tmp_path):
    """The network check below can fail: telemetry and name lookups are found; loopback and local IPC are not."""
    log = tmp_path / "trace"
    log.write_text(STRACE_LINES)
    assert outside(connects(log, True)) == [
        ("AF_INET", "13.107.5.88", 443),
        ("AF_INET", "127.0.0.53", 53),
        ("AF_INET6", "2603:1030::1", 443),
        ("AF_UNIX", "/run/systemd/resolve/io.systemd.Resolve", 0),
    ]
    guard = tmp_path / "guard"
    guard.write_text('["DNS", "mobile.events.data.microsoft.com", 53]\n["AF_INET", "127.0.0.1", 9]\n')
    assert outside(connects(guard, False)) == [("DNS", "mobile.events.data.microsoft.com", 53)]


def _traced(args: list[str], log: Path) -> tuple[subprocess.CompletedProcess, bool]:
    """Run the edgecut CLI with every connect recorded: strace -f when installed, else a socket guard."""
    env = clean_env(EDGECUT_CONNECT_LOG=str(log))
    strace = shutil.which("strace")
    if strace:  # seccomp-bpf: only connect stops the process, so tracing costs almost nothing
        trace = [strace, "-f", "-qq", "--seccomp-bpf", "-e", "trace=connect", "-o", str(log)]
        cmd = [*trace, sys.executable, "-c", RUN_CLI, *args]
    else:  # sees Python's sockets only, not a C library's own: strace is the stronger check
        cmd = [sys.executable, "-c", GUARD + RUN_CLI, *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True), bool(strace)


@pytest.fixture(scope="module")
def traced_export(tiny_model_dirs, tiny_csv, tmp_path_factory):
    """The module's one tiny export, through the CLI in a process of its own, every connect recorded."""
    root = tmp_path_factory.mktemp("safety")
    out, log = root / "tiny", root / "export.trace"
    result, by_strace = _traced(export_args(tiny_model_dirs["gpt2"], tiny_csv, out), log)
    assert result.returncode == 0, result.stdout + result.stderr
    return out, connects(log, by_strace)


@pytest.mark.slow  # an export in a process of its own under strace: half a minute; CI runs -m slow
def test_the_exported_artifact_has_the_umasks_mode(traced_export):
    umask = os.umask(0)
    os.umask(umask)
    assert traced_export[0].stat().st_mode & 0o777 == 0o777 & ~umask  # the export ran with this umask


@pytest.mark.slow
def test_export_check_and_predict_make_no_network_connection(traced_export, tiny_csv, tmp_path):
    out, export_connects = traced_export
    assert outside(export_connects) == []
    for name, args in [
        ("check", ["check", str(out), "--data", str(tiny_csv), "--latency-runs", "20"]),
        ("predict", ["predict", str(out), "a lovely film", "a dull plot"]),
    ]:
        result, by_strace = _traced(args, tmp_path / name)
        assert result.returncode == 0, result.stdout + result.stderr
        assert outside(connects(tmp_path / name, by_strace)) == [], name
