"""Nothing lost, nothing leaked: what --force may replace, races at the final rename,
unwritable outputs, SIGTERM and kill -9, directory modes, and no network traffic.

Most cases need no model: they drive `edgecut.artifacts.artifact` directly or fail before any model loads. One
tiny export (module fixture, run under strace) serves the deploy and network cases.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from artifact_helpers import TEMPLATE
from conftest import SwallowsSignal
from typer.testing import CliRunner

from edgecut import atomic
from edgecut.artifacts.artifact import (
    STAGING,
    check_destination,
    file_starts_with,
    host_tag,
    remove_stale_partials,
    scratch_dir,
    staging,
)
from edgecut.atomic import rename_noreplace
from edgecut.cli import app
from edgecut.errors import EdgecutError, OutputExistsError, OutputNotWritableError, Terminated
from edgecut.signals import terminate_as_interrupt

runner = CliRunner()
TRITON_HEADER = "# Triton model configuration written by `edgecut deploy`"


def _fake_artifact(path: Path, manifest: object = None) -> Path:
    """A directory `is_artifact_dir` accepts (or, with another manifest, one it must refuse)."""
    path.mkdir(parents=True, exist_ok=True)
    record = {"manifest_version": 1} if manifest is None else manifest
    text = record if isinstance(record, str) else json.dumps(record)
    (path / "edgecut.json").write_text(text, encoding="utf-8")
    (path / "model.onnx").write_bytes(b"old model")
    return path


def _user_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "thesis.tex").write_text("years of work", encoding="utf-8")
    return path


def _snapshot(path: Path) -> dict[str, str]:
    """Every file under `path` with its sha256: equal before and after means nothing was touched."""
    if path.is_file():
        return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()}
    return {
        p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def _dead_pid() -> int:
    """The pid of a process that has exited (reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


# --- 1. what --force may replace --------------------------------------------------------------------------


def _model_dir(tmp: Path):
    """The model being read, even if it also looks like an artifact: protection wins."""
    model = _fake_artifact(tmp / "model")
    (model / "model.safetensors").write_bytes(b"weights")
    return model, [model]


def _parent_of_data(tmp: Path):
    data_dir = _fake_artifact(tmp / "datasets")
    (data_dir / "reviews.csv").write_text("text,label\n", encoding="utf-8")
    return data_dir, [data_dir / "reviews.csv"]


def _symlink_to_model(tmp: Path):
    model = _fake_artifact(tmp / "model")
    (tmp / "link").symlink_to(model, target_is_directory=True)
    return tmp / "link", [model]


def _cwd(tmp: Path):
    return Path("."), []


def _parent_of_cwd(tmp: Path):
    return Path(".."), []


def _home(tmp: Path):
    return Path.home(), []


def _root(tmp: Path):
    return Path("/"), []


def _plain_dir(tmp: Path):
    return _user_dir(tmp / "out"), []


def _symlink_to_plain_dir(tmp: Path):
    (tmp / "out").symlink_to(_user_dir(tmp / "real"), target_is_directory=True)
    return tmp / "out", []


def _manifest_without_version(tmp: Path):
    return _fake_artifact(tmp / "out", {"model_file": "model.onnx"}), []


def _manifest_not_json(tmp: Path):
    return _fake_artifact(tmp / "out", "{not json"), []


def _manifest_not_object(tmp: Path):
    return _fake_artifact(tmp / "out", [1]), []


def _file(tmp: Path):
    (tmp / "out").write_text("notes", encoding="utf-8")
    return tmp / "out", []


# (case, force, expected words in the one error line); every refused case must leave the path untouched.
REFUSED = [
    (_model_dir, True, "the input"),
    (_parent_of_data, True, "a directory above the input"),
    (_symlink_to_model, True, "the input"),
    (_cwd, True, "the working directory"),
    (_parent_of_cwd, True, "a directory above the working directory"),
    (_home, True, "your home directory"),
    (_root, True, "the root directory"),
    (_plain_dir, True, "not a directory edgecut wrote (no readable edgecut.json)"),
    (_symlink_to_plain_dir, True, "not a directory edgecut wrote"),
    (_manifest_without_version, True, "not a directory edgecut wrote"),
    (_manifest_not_json, True, "not a directory edgecut wrote"),
    (_manifest_not_object, True, "not a directory edgecut wrote"),
    (_file, True, "is not a directory"),
    (_plain_dir, False, "already exists: it is not a directory edgecut wrote"),  # --force would not help
    (_model_dir, False, "already exists"),
]


@pytest.fixture()
def workdir(tmp_path, monkeypatch) -> Path:
    """HOME, a project in it and cwd in that, each looking like an artifact: only the guards refuse them."""
    home = _fake_artifact(tmp_path / "home")
    _fake_artifact(home / "project")
    work = _fake_artifact(home / "project" / "work")
    _fake_artifact(work / "sub")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    return work


@pytest.mark.parametrize(("case", "force", "words"), REFUSED, ids=lambda v: getattr(v, "__name__", str(v)))
def test_force_never_replaces_what_edgecut_did_not_write(workdir, case, force, words):
    out, protected = case(workdir / "sub")
    before = None if out.resolve() == Path("/") else _snapshot(out)
    with pytest.raises(OutputExistsError) as e:
        check_destination(out, force, protected)
    assert words in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(OutputExistsError):  # staging refuses the same, before creating anything
        with staging(out, force, protected):
            pytest.fail("staging yielded")
    assert before is None or _snapshot(out) == before


def test_force_replaces_an_artifact_and_leaves_nothing_beside_it(workdir):
    out = _fake_artifact(workdir / "sub" / "art")
    hub_id = Path("gpt2")  # a hub id is not a path: ignored, whatever the directory holds
    with staging(out, True, protected=[hub_id]) as tmp:
        (tmp / "model.onnx").write_bytes(b"new model")
    assert _snapshot(out) == _snapshot_of({"model.onnx": b"new model"})
    assert sorted(p.name for p in out.parent.iterdir()) == ["art", "edgecut.json", "model.onnx"]


def _snapshot_of(files: dict[str, bytes]) -> dict[str, str]:
    return {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}


def test_a_new_output_needs_no_force_and_protected_paths_that_do_not_exist_are_ignored(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    check_destination(Path("gpt2"), False, protected=[Path("gpt2")])  # --model gpt2 (hub) -o gpt2
    check_destination(tmp_path / "a" / "b" / "c", False)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b"]  # parents made, the probe removed


# --- 2. the final rename replaces nothing it did not check -------------------------------------------------


def _empty_dir(path: Path) -> None:
    path.mkdir()


def _full_dir(path: Path) -> None:
    _user_dir(path)


def _plain_file(path: Path) -> None:
    path.write_text("notes", encoding="utf-8")


def _dangling_symlink(path: Path) -> None:
    path.symlink_to(path.parent / "nowhere")


def _artifact_replaced_by_user_dir(path: Path) -> None:
    shutil.rmtree(path)
    _user_dir(path)


def _artifact_replaced_by_symlink(path: Path) -> None:
    shutil.rmtree(path)
    path.symlink_to(_fake_artifact(path.parent / "elsewhere"), target_is_directory=True)


# (what exists at the start, force, what another process puts there during the export, words)
RACES = [
    (None, False, _empty_dir, "was created by something else during the export"),
    (None, False, _full_dir, "was created by something else"),
    (None, False, _plain_file, "was created by something else"),
    (None, False, _dangling_symlink, "was created by something else"),
    (None, True, _empty_dir, "changed during the export"),
    (None, True, _full_dir, "changed during the export"),
    ("artifact", True, _artifact_replaced_by_user_dir, "changed during the export"),
    ("artifact", True, _artifact_replaced_by_symlink, "changed during the export"),
]


@pytest.fixture(params=["renameat2", "check-then-rename"])
def rename_kind(request, monkeypatch):
    """Both final-rename paths: the atomic kernel call, and the fallback for systems without it."""
    if request.param == "renameat2":
        if atomic._NATIVE_RENAME is None:
            pytest.skip("no renameat2/renamex_np here")
    else:
        monkeypatch.setattr(atomic, "_NATIVE_RENAME", None)
    return request.param


@pytest.mark.parametrize(("start", "force", "appear", "words"), RACES, ids=lambda v: getattr(v, "__name__", str(v)))
def test_a_destination_that_appears_during_the_export_is_not_replaced(
    tmp_path, rename_kind, start, force, appear, words
):
    out = tmp_path / "out"
    if start == "artifact":
        _fake_artifact(out)
    with pytest.raises(OutputExistsError) as e:
        with staging(out, force) as tmp:
            (tmp / "model.onnx").write_bytes(b"new model")
            appear(out)
            before = _snapshot(out) if out.exists() else None
            target = os.readlink(out) if out.is_symlink() else None
    assert words in str(e.value) and str(out) in str(e.value)
    assert (os.readlink(out) if out.is_symlink() else None) == target
    if before is not None:
        assert _snapshot(out) == before  # the newcomer is intact, the new artifact is not in it
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name or ".old-" in p.name]


def test_rename_noreplace_refuses_an_empty_directory(tmp_path, rename_kind):
    """os.rename alone would silently replace an empty directory: the case the kernel flag exists for."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_text("x")
    (tmp_path / "dst").mkdir()
    with pytest.raises(FileExistsError):
        rename_noreplace(tmp_path / "src", tmp_path / "dst")
    assert (tmp_path / "src" / "f").exists() and not any((tmp_path / "dst").iterdir())
    rename_noreplace(tmp_path / "src", tmp_path / "new")
    assert (tmp_path / "new" / "f").read_text() == "x"


def test_scratch_is_never_part_of_the_artifact(tmp_path):
    out = tmp_path / "out"
    with staging(out, False) as tmp:
        (scratch_dir(tmp) / "checkpoint.pt").write_bytes(b"x" * 1000)
        (tmp / "model.onnx").write_bytes(b"model")
        assert scratch_dir(tmp) == tmp / STAGING
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_failure_inside_staging_leaves_nothing(tmp_path):
    out = _fake_artifact(tmp_path / "out")
    before = _snapshot(out)
    with pytest.raises(RuntimeError, match="boom"):
        with staging(out, True) as tmp:
            (scratch_dir(tmp) / "checkpoint.pt").write_bytes(b"x")
            raise RuntimeError("boom")
    assert _snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


# --- 5. directory mode ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o755), (0o027, 0o750), (0o002, 0o775)])
def test_the_artifact_directory_has_the_umasks_mode(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        with staging(tmp_path / "out", False) as tmp:
            (tmp / "model.onnx").write_bytes(b"model")
    finally:
        os.umask(old)
    assert (tmp_path / "out").stat().st_mode & 0o777 == mode  # not mkdtemp's 0700


# --- 6. an output that cannot be written, found before any work ------------------------------------------------


def _under_a_file(tmp: Path) -> Path:
    (tmp / "notes.txt").write_text("x")
    return tmp / "notes.txt" / "out"


def _read_only_parent(tmp: Path) -> Path:
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only directories")
    (tmp / "ro").mkdir(mode=0o555)
    return tmp / "ro" / "out"


def _proc(tmp: Path) -> Path:
    return Path("/proc/self/edgecut-out")


def _proc_missing_parent(tmp: Path) -> Path:
    return Path("/proc/edgecut-missing/out")


def _too_long(tmp: Path) -> Path:
    return tmp / ("x" * 250)  # the partial's name beside it would pass NAME_MAX


UNWRITABLE = [_under_a_file, _read_only_parent, _proc, _proc_missing_parent, _too_long]


@pytest.mark.parametrize("case", UNWRITABLE, ids=lambda f: f.__name__)
def test_an_unwritable_output_fails_before_any_work(tmp_path, case):
    out = case(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(OutputNotWritableError) as e:
        check_destination(out, False)
    message = str(e.value)
    assert isinstance(e.value, EdgecutError) and "\n" not in message
    assert message.startswith(f"cannot write {out} (") and "choose an output in a directory you can write" in message
    assert sorted(tmp_path.rglob("*")) == before


def test_cli_export_refuses_an_unwritable_output_without_loading_a_model(tmp_path, tiny_csv):
    """Exit 2 and one line, even though --model does not exist: the output is checked first."""
    (tmp_path / "notes.txt").write_text("x")
    result = runner.invoke(
        app,
        [
            "export",
            "--model",
            str(tmp_path / "no-model"),
            "--data",
            str(tiny_csv),
            "-o",
            str(tmp_path / "notes.txt" / "o"),
        ],
    )
    assert result.exit_code == 2, result.output
    assert "cannot write" in result.output and "Traceback" not in result.output


def _cli_model_dir(tmp: Path):
    model = _user_dir(tmp / "model")
    (model / "model.safetensors").write_bytes(b"weights")
    return model, model, "it is the input"


def _cli_model_like_an_artifact(tmp: Path):
    model, _, _ = _cli_model_dir(tmp)
    _fake_artifact(model)
    return model, model, "it is the input"


def _cli_data_parent(tmp: Path):
    _, _, _ = _cli_model_dir(tmp)
    return _fake_artifact(tmp / "datasets"), tmp / "model", "it is a directory above the input"


def _cli_cwd(tmp: Path):
    model, _, _ = _cli_model_dir(tmp)
    _fake_artifact(tmp / "work")
    return Path("."), model, "it is the working directory"


@pytest.mark.parametrize("case", [_cli_model_dir, _cli_model_like_an_artifact, _cli_data_parent, _cli_cwd])
def test_cli_export_force_never_deletes_an_input_or_the_working_directory(tmp_path, tiny_csv, monkeypatch, case):
    """`export --model DIR -o DIR --force` and `-o . --force` deleted user files; now exit 2, one line, before
    any model loads (the model here is not even a real one)."""
    out, model, words = case(tmp_path)
    data = tmp_path / "datasets" / "reviews.csv"
    data.parent.mkdir(exist_ok=True)
    shutil.copy(tiny_csv, data)
    monkeypatch.chdir(tmp_path / "work" if (tmp_path / "work").exists() else tmp_path)
    before = _snapshot(tmp_path)
    result = runner.invoke(app, ["export", "--model", str(model), "--data", str(data), "-o", str(out), "--force"])
    assert result.exit_code == 2, result.output
    assert "--force will not replace" in result.output and words in result.output
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("kind", ["file", "foreign directory"])
def test_an_output_force_cannot_replace_is_not_offered_force(tmp_path, kind):
    """`-o o/afile` said "pass --force to replace it", and --force was then refused: the message names what
    works instead (another output), and says --force replaces only edgecut's own output."""
    out = tmp_path / "o" / "afile"
    out.parent.mkdir()
    if kind == "file":
        out.write_text("mine")
    else:
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    for force in (False, True):
        with pytest.raises(OutputExistsError) as e:
            check_destination(out, force)
        message = str(e.value)
        assert "choose another output" in message and "pass --force" not in message, message
        assert "--force replaces only" in message or "remove it yourself" in message, message


# --- 4. kill -9 and SIGTERM -----------------------------------------------------------------------------------

WORKER = """
import sys, time
from pathlib import Path
from edgecut.artifacts.artifact import scratch_dir, staging
from edgecut.signals import terminate_as_interrupt
from edgecut.errors import Terminated

try:
    with terminate_as_interrupt(), staging(Path(sys.argv[1]), force=False) as tmp:
        (tmp / "model.onnx").write_bytes(b"x" * 100_000)
        (scratch_dir(tmp) / "checkpoint.pt").write_bytes(b"y" * 100_000)
        print("ready", flush=True)
        time.sleep(120)
except Terminated:
    print("error: terminated; nothing was written", flush=True)
    sys.exit(143)
"""


@pytest.fixture()
def worker(tmp_path):
    """Start a process that is mid-export into tmp_path/out (its partial and scratch written)."""
    procs = []

    def start() -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tmp_path / "out")], stdout=subprocess.PIPE, text=True
        )
        procs.append(proc)
        assert proc.stdout.readline() == "ready\n"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigterm_cleans_up_like_ctrl_c_and_exits_143(tmp_path, worker):
    proc = worker()
    assert [p for p in tmp_path.iterdir() if ".partial-" in p.name]  # the worker really was mid-export
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    assert proc.stdout.read() == "error: terminated; nothing was written\n"
    assert list(tmp_path.iterdir()) == []


def test_a_partial_left_by_kill_9_is_removed_by_the_next_staging_of_that_destination(tmp_path, worker):
    proc = worker()
    proc.kill()
    proc.wait(timeout=60)
    (left,) = tmp_path.iterdir()
    assert left.name.startswith(".out.partial-") and (left / STAGING / "checkpoint.pt").exists()
    with staging(tmp_path / "out", False) as tmp:
        (tmp / "model.onnx").write_bytes(b"model")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def _partial(parent: Path, name: str, pid: int, host: str | None = None, kind: str = "partial") -> Path:
    path = parent / f".{name}.{kind}-{host or host_tag()}-{pid}-0123abcd"
    _user_dir(path)
    return path


@pytest.fixture()
def live_pid():
    proc = subprocess.Popen(["sleep", "60"])
    yield proc.pid
    proc.kill()
    proc.wait()


def test_stale_cleanup_removes_only_dead_partials_of_that_destination(tmp_path, live_pid):
    dead = _dead_pid()
    out = tmp_path / "out"
    removed = _partial(tmp_path, "out", dead)
    kept = [
        _partial(tmp_path, "out", live_pid),  # its export is still running
        _partial(tmp_path, "out", os.getpid()),  # this process
        _partial(tmp_path, "out", dead, host="0badc0de"),  # another machine's, on a shared filesystem
        _partial(tmp_path, "other", dead),  # another destination's
        _partial(tmp_path, "out.partial-1", dead),  # a destination whose name looks like a partial
        _user_dir(tmp_path / f".out.partial-{host_tag()}-{dead}-notes"),  # not our name pattern
        _user_dir(tmp_path / ".out.partial-old"),
        _user_dir(tmp_path / "out.backup"),
    ]
    link = tmp_path / f".out.partial-{host_tag()}-{dead}-aaaabbbb"
    link.symlink_to(_user_dir(tmp_path / "linked"), target_is_directory=True)
    kept += [link, tmp_path / "linked"]
    snapshots = {p: _snapshot(p) for p in kept}
    assert remove_stale_partials(out) == [removed]
    assert not removed.exists()
    assert {p: _snapshot(p) for p in kept} == snapshots


def test_stale_cleanup_puts_back_an_artifact_a_killed_force_run_had_moved_aside(tmp_path):
    dead = _dead_pid()
    old = _partial(tmp_path, "out", dead, kind="old")
    before = _snapshot(old)
    assert remove_stale_partials(tmp_path / "out") == [old]
    assert _snapshot(tmp_path / "out") == before and not old.exists()
    old = _partial(tmp_path, "out", dead, kind="old")  # out exists now: the moved-aside copy is obsolete
    assert remove_stale_partials(tmp_path / "out") == [old]
    assert not old.exists() and _snapshot(tmp_path / "out") == before


def test_terminate_as_interrupt_raises_once_and_restores_the_handler():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated) as e:
        with terminate_as_interrupt():
            try:
                signal.raise_signal(signal.SIGTERM)
                pytest.fail("SIGTERM did not raise")
            except Terminated:
                signal.raise_signal(signal.SIGTERM)  # a second SIGTERM during cleanup is ignored
                raise
    assert isinstance(e.value, KeyboardInterrupt)  # every `except KeyboardInterrupt` cleanup runs
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")  # no "Exception ignored"
@pytest.mark.parametrize("signum, raised", [(signal.SIGTERM, Terminated), (signal.SIGINT, KeyboardInterrupt)])
def test_a_stop_whose_exception_a_finaliser_swallowed_still_publishes_nothing(tmp_path, signum, raised):
    """Seen in CI: the SIGTERM landed in a regex finaliser, and the export went on to publish and exit 0."""
    out = tmp_path / "out"
    with pytest.raises(raised), terminate_as_interrupt(), staging(out, force=False) as tmp:
        (tmp / "model.onnx").write_bytes(b"x")
        SwallowsSignal(signum)  # dropped at once: "Exception ignored in ... __del__"
        (tmp / "manifest.json").write_text("{}")  # the export goes on, unaware
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(raised), terminate_as_interrupt():  # without staging, the block still ends in the stop
        SwallowsSignal(signum)
    with terminate_as_interrupt():  # and the next block starts clean
        pass


def test_only_our_own_swallowed_stop_is_kept_quiet(monkeypatch):
    """Python prints an exception lost in a finaliser ("Exception ignored ... Traceback") through
    sys.unraisablehook: for the stop edgecut raises again, that traceback would bury the one error line.
    Anything else lost in a finaliser still reaches the hook that was there before."""
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: seen.append(type(unraisable.exc_value)))

    class RaisesValueError:
        def __del__(self):
            raise ValueError("not ours")

    with pytest.raises(Terminated), terminate_as_interrupt():
        SwallowsSignal(signal.SIGTERM)
        RaisesValueError()
    assert seen == [ValueError]


def test_terminate_as_interrupt_outside_the_main_thread_does_nothing():
    errors = []

    def run():
        try:
            with terminate_as_interrupt():
                pass
        except Exception as e:  # signal.signal raises ValueError outside the main thread
            errors.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert errors == []


# --- 3. no network call the user did not ask for ---------------------------------------------------------------


@pytest.mark.parametrize(("preset", "expected"), [(None, "1"), ("0", "0")])
def test_importing_the_runtime_disables_onnxruntime_telemetry(preset, expected):
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    if preset is not None:
        env["ORT_DISABLE_TELEMETRY"] = preset  # a user's own choice is kept
    code = "import os, edgecut.runtime; print(os.environ.get('ORT_DISABLE_TELEMETRY'))"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout == f"{expected}\n"


RUN_CLI = "from edgecut.cli import main; main()"
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


def _export_args(model: Path, data: Path, out: Path) -> list[str]:
    """`edgecut export` of a 1-layer tiny model, as tests/artifact_helpers.export_tiny runs it."""
    args = ["export", "--model", str(model), "--data", str(data), "--layers", "1"]
    args += ["--labels", "negative,positive", "--template", TEMPLATE, "--lr", "2e-3", "--batch-size", "8"]
    return [*args, "--test-size", "40", "--epochs", "1", "-o", str(out)]


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell, not pytest's: what the CLI sees when run by hand."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    return env | {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **extra}


def _traced(args: list[str], log: Path) -> tuple[subprocess.CompletedProcess, bool]:
    """Run the edgecut CLI with every connect recorded: strace -f when installed, else a socket guard."""
    env = _clean_env(EDGECUT_CONNECT_LOG=str(log))
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
    result, by_strace = _traced(_export_args(tiny_model_dirs["gpt2"], tiny_csv, out), log)
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


# --- 1. deploy --force on a Triton repository -------------------------------------------------------------------


def _deploy(*args):
    return runner.invoke(app, ["deploy", *map(str, args)])


def test_deploy_force_replaces_only_a_model_directory_edgecut_deploy_wrote(tiny_artifact, tmp_path):
    art = tiny_artifact
    repo = tmp_path / "repo"
    old = os.umask(0o022)
    try:
        first = _deploy(art, "--triton", repo, "--name", "m")
    finally:
        os.umask(old)
    assert first.exit_code == 0, first.output
    assert (repo / "m").stat().st_mode & 0o777 == 0o755  # a Triton server of another user can read it
    assert file_starts_with("config.pbtxt", TRITON_HEADER)(repo / "m")

    again = _deploy(art, "--triton", repo, "--name", "m", "--force")
    assert again.exit_code == 0, again.output
    assert sorted(p.name for p in repo.iterdir()) == ["m"]  # no partial or old directory left

    user = _user_dir(repo / "theirs")
    (user / "config.pbtxt").write_text('name: "theirs"\n')  # a hand-written Triton model
    before = _snapshot(user)
    refused = _deploy(art, "--triton", repo, "--name", "theirs", "--force")
    assert refused.exit_code == 2, refused.output
    assert "--force will not replace" in refused.output and "config.pbtxt written by edgecut" in refused.output
    assert _snapshot(user) == before


def test_deploy_force_never_replaces_the_artifact_being_deployed(tiny_artifact, tmp_path):
    art = shutil.copytree(tiny_artifact, tmp_path / "art")
    (art / "config.pbtxt").write_text(TRITON_HEADER + " (edgecut 0.1.0).\n")  # even if it looks deployed
    before = _snapshot(art)
    for repo, name in [(art.parent, art.name), (art.parent.parent, art.parent.name)]:
        result = _deploy(art, "--triton", repo, "--name", name, "--force")
        assert result.exit_code == 2, result.output
        assert "--force will not replace" in result.output and "the input" in result.output
    assert _snapshot(art) == before


def test_cli_export_terminated_by_sigterm_exits_143_and_leaves_nothing(tiny_model_dirs, tiny_csv, tmp_path):
    """What `timeout`, CI cancellation and `docker stop` do mid-export: one line, exit 143, no partial
    beside the destination and no scratch in TMPDIR."""
    out, scratch, log = tmp_path / "out" / "tiny", tmp_path / "tmp", tmp_path / "output.txt"
    scratch.mkdir()
    cmd = [sys.executable, "-c", RUN_CLI, *_export_args(tiny_model_dirs["gpt2"], tiny_csv, out)]
    with log.open("w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=_clean_env(TMPDIR=str(scratch)))
    try:
        while not list(out.parent.glob(".tiny.partial-*")):  # wait until the export is writing
            assert proc.poll() is None, log.read_text()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 143, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log.read_text()
    (error,) = [line for line in output.splitlines() if line.startswith("error:")]
    assert error.startswith("error: terminated") and "Traceback" not in output
    assert list(out.parent.iterdir()) == [] and list(scratch.iterdir()) == []
