"""Stopped from outside: SIGTERM and kill -9 mid-export leave nothing, and the next run cleans what a killed
one left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from artifact_helpers import RUN_CLI, clean_env, dead_pid, export_args, snapshot, user_dir
from conftest import SwallowsSignal

from edgecut.artifacts.artifact import (
    STAGING,
    host_tag,
    remove_stale_partials,
    staging,
)
from edgecut.errors import Terminated
from edgecut.signals import terminate_as_interrupt

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
    user_dir(path)
    return path


@pytest.fixture()
def live_pid():
    proc = subprocess.Popen(["sleep", "60"])
    yield proc.pid
    proc.kill()
    proc.wait()


def test_stale_cleanup_removes_only_dead_partials_of_that_destination(tmp_path, live_pid):
    dead = dead_pid()
    out = tmp_path / "out"
    removed = _partial(tmp_path, "out", dead)
    kept = [
        _partial(tmp_path, "out", live_pid),  # its export is still running
        _partial(tmp_path, "out", os.getpid()),  # this process
        _partial(tmp_path, "out", dead, host="0badc0de"),  # another machine's, on a shared filesystem
        _partial(tmp_path, "other", dead),  # another destination's
        _partial(tmp_path, "out.partial-1", dead),  # a destination whose name looks like a partial
        user_dir(tmp_path / f".out.partial-{host_tag()}-{dead}-notes"),  # not our name pattern
        user_dir(tmp_path / ".out.partial-old"),
        user_dir(tmp_path / "out.backup"),
    ]
    link = tmp_path / f".out.partial-{host_tag()}-{dead}-aaaabbbb"
    link.symlink_to(user_dir(tmp_path / "linked"), target_is_directory=True)
    kept += [link, tmp_path / "linked"]
    snapshots = {p: snapshot(p) for p in kept}
    assert remove_stale_partials(out) == [removed]
    assert not removed.exists()
    assert {p: snapshot(p) for p in kept} == snapshots


def test_stale_cleanup_puts_back_an_artifact_a_killed_force_run_had_moved_aside(tmp_path):
    dead = dead_pid()
    old = _partial(tmp_path, "out", dead, kind="old")
    before = snapshot(old)
    assert remove_stale_partials(tmp_path / "out") == [old]
    assert snapshot(tmp_path / "out") == before and not old.exists()
    old = _partial(tmp_path, "out", dead, kind="old")  # out exists now: the moved-aside copy is obsolete
    assert remove_stale_partials(tmp_path / "out") == [old]
    assert not old.exists() and snapshot(tmp_path / "out") == before


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


def test_cli_export_terminated_by_sigterm_exits_143_and_leaves_nothing(tiny_model_dirs, tiny_csv, tmp_path):
    """What `timeout`, CI cancellation and `docker stop` do mid-export: one line, exit 143, no partial
    beside the destination and no scratch in TMPDIR."""
    out, scratch, log = tmp_path / "out" / "tiny", tmp_path / "tmp", tmp_path / "output.txt"
    scratch.mkdir()
    cmd = [sys.executable, "-c", RUN_CLI, *export_args(tiny_model_dirs["gpt2"], tiny_csv, out)]
    with log.open("w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=clean_env(TMPDIR=str(scratch)))
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
