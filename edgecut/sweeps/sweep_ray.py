"""`edgecut sweep --ray`: every missing cell of the grid as a Ray task, on a local Ray or a cluster.

Each cell is `edgecut.sweeps.sweep.run_cell` (the very function the serial loop calls) in a Ray task that asks for
its resources: one CPU, plus a GPU where the cell's target runs on CUDA or, with `--teacher-gpu`, for each
full-depth run. A distilled cut gets its teacher's task as an argument, so Ray starts it as soon as the
teacher is written. Results land in the sweep directory as in a serial sweep (which must be on a filesystem
every node sees), so the reports and resuming are unchanged.

Faults: a task whose worker process dies (kill -9, a lost node) is run again by Ray (`max_retries`); the
export's partial directory is removed by the retry's own staging. A cell's own error (bad input, a graph
that fails parity) is returned as a value, never retried (`retry_exceptions=False`), and reported in one
line while the other cells go on. Ctrl-C or SIGTERM of the sweep cancels every task (`ray.cancel(force=True)`
kills their workers) and removes what the killed exports left, so no partial artifact stays behind.

Where each cell ran is written beside it, `runs/NAME.placement.json`: one entry per attempt with the node
id and address, the host and the worker's pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

from edgecut.artifacts.artifact import raise_if_interrupted, remove_stale_partials
from edgecut.errors import EdgecutError, ParityError
from edgecut.pipeline import Progress
from edgecut.sweeps.sweep import FULL, Run, SweepOutcome, SweepSettings, is_done, run_cell, run_dir, run_sweep
from edgecut.sweeps.sweep_report import write_atomic

# A worker that dies mid-cell (OOM kill, preempted node) is retried this many times before the cell fails.
MAX_RETRIES = 2
CPUS_PER_CELL = 1
# A local Ray (`--ray local`): loopback only, no dashboard, a small object store (cells pass only paths).
LOCAL_OBJECT_STORE_BYTES = 128 * 1024**2
GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")
PLACEMENT = ".placement.json"
LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": no cluster, the node address is 127.0.0.1


def run_sweep_on_ray(settings: SweepSettings, progress: Progress | None = None) -> SweepOutcome:
    """`edgecut.sweeps.sweep.run_sweep` with every missing cell a Ray task on `settings.ray` (`edgecut sweep --ray`)."""
    return run_sweep(settings, progress, execute=run_on_ray)


def import_ray(local: bool = False):
    """Ray, imported only for `--ray`; missing, it is one line with the fix.

    For a local Ray, Ray's own single-machine switch (read when ray is imported, inherited by the processes
    it starts) puts the node on 127.0.0.1: every server of a local Ray then listens on the loopback only.
    """
    if local:
        os.environ.setdefault(LOOPBACK_ONLY, "0")
    try:
        import ray
    except ImportError as e:
        raise EdgecutError("--ray needs Ray, which is not installed: pip install 'edgecut[ray]'") from e
    return ray


def cell_resources(settings: SweepSettings, run: Run) -> dict[str, float]:
    """The Ray resource request of one cell: a CPU, and a GPU where the cell cannot run without one."""
    from edgecut.targets import load_target

    needs_gpu = any(p in GPU_PROVIDERS for p in load_target(settings.base.target or "cpu").providers)
    teacher = settings.teacher_gpu and run.layers == FULL and run.baseline is None
    return {"num_cpus": CPUS_PER_CELL, "num_gpus": 1 if needs_gpu or teacher else 0}


def placement_path(out: Path, run: Run) -> Path:
    return run_dir(out, run).with_name(run.name + PLACEMENT)


def read_placement(out: Path, run: Run) -> dict[str, Any]:
    """The attempts recorded for a cell so far ({"attempts": []} if it never started)."""
    try:
        record = json.loads(placement_path(out, run).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"attempts": []}
    return record if isinstance(record, dict) and isinstance(record.get("attempts"), list) else {"attempts": []}


def cell_task(settings: SweepSettings, run: Run, teacher: dict | None = None) -> dict[str, Any]:
    """Body of a cell's Ray task: note where it runs, then export it. A cell's own error is a result."""
    import ray

    if teacher is not None and teacher["status"] != "ok":
        return {"name": run.name, "status": "skipped", "error": f"its teacher {teacher['name']} did not finish"}
    record = read_placement(settings.output, run)
    attempt = {"node_id": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(), "pid": os.getpid()}
    record["attempts"].append(attempt | {"started": time.time()})
    write_atomic(placement_path(settings.output, run), json.dumps(record, indent=1))
    start = time.monotonic()
    try:
        run_cell(settings, run)
    except ParityError as e:
        return {"name": run.name, "status": "parity", "error": str(e)}
    except EdgecutError as e:  # the same input would fail again: not a fault to retry
        return {"name": run.name, "status": "input", "error": str(e)}
    return {"name": run.name, "status": "ok", "seconds": time.monotonic() - start} | attempt


def connect(ray, address: str) -> bool:
    """Join the cluster at `address`, or start a local Ray for `local`; True if this call started one."""
    if ray.is_initialized():  # a caller (a notebook, a test) connected already
        return False
    quiet = {"log_to_driver": False, "logging_level": "WARNING", "configure_logging": True}
    try:
        if address == "local":
            ray.init(
                include_dashboard=False,
                object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                _node_ip_address="127.0.0.1",
                **quiet,
            )
        else:
            check_reachable(address)
            ray.init(address=address, **quiet)
    except ConnectionError as e:
        raise EdgecutError(
            f"--ray {address}: no Ray cluster answers there ({e}); start one (`ray start --head`) or use --ray local"
        ) from e
    return True


def check_reachable(address: str) -> None:
    """A `HOST:PORT` or `ray://HOST:PORT` nobody listens on is one line in seconds (Ray would retry for minutes)."""
    if address == "auto":
        return
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        raise EdgecutError(f"--ray {address}: give local, auto, HOST:PORT (the head's GCS) or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as e:
        raise EdgecutError(
            f"--ray {address}: nothing answers there ({e.strerror or e}); start Ray there (`ray start --head`) "
            "or use --ray local"
        ) from e


def run_on_ray(settings: SweepSettings, runs: list[Run], progress: Progress) -> tuple[list[str], list[str], bool]:
    """Run the missing cells of `runs` as Ray tasks; return (ran, failed "name: why", any failure bad input)."""
    ray = import_ray(local=settings.ray in (None, "local"))
    out = settings.output
    pending = [run for run in runs if not is_done(out, run)]
    if not pending:  # a finished sweep resumed: nothing to place, no cluster to start
        return [], [], False
    (out / "runs").mkdir(parents=True, exist_ok=True)
    for run in pending:  # attempts of an earlier, interrupted sweep say nothing about this one
        placement_path(out, run).unlink(missing_ok=True)
    on_sigterm = signal.getsignal(signal.SIGTERM)
    started = connect(ray, settings.ray or "local")
    if threading.current_thread() is threading.main_thread() and on_sigterm is not None:
        signal.signal(signal.SIGTERM, on_sigterm)  # ray.init's own handler exits at once; keep the caller's
    refs: dict[Run, Any] = {}
    try:
        gpus = [run.name for run in pending if cell_resources(settings, run)["num_gpus"]]
        if gpus and not ray.cluster_resources().get("GPU"):
            raise EdgecutError(
                f"{', '.join(gpus)} need a GPU and the Ray cluster at {settings.ray} has none: add a GPU node, "
                "or drop --teacher-gpu (or use a CPU --target)"
            )
        task = ray.remote(cell_task)
        for run in pending:  # grid order: a teacher is submitted before the cuts it teaches
            teacher = None
            if settings.distill and run.baseline is None and run.layers != FULL:
                teacher = refs.get(Run(FULL, run.seed))
            options = cell_resources(settings, run) | {"max_retries": MAX_RETRIES, "retry_exceptions": False}
            refs[run] = task.options(name=f"edgecut-{run.name}", **options).remote(settings, run, teacher)
        progress.note(f"ray: {len(refs)} cells submitted to {settings.ray}, {cluster_size(ray)}")
        results = _collect(ray, refs, out, progress)
    except BaseException:  # Ctrl-C, SIGTERM: no task may go on writing into the directory
        _cancel(ray, refs, out, progress)
        raise_if_interrupted()  # the stop the handler recorded: out of ray.wait a SIGTERM came as KeyboardInterrupt
        raise
    finally:
        if started:
            ray.shutdown()
    ran = [r["name"] for r in results if r["status"] == "ok"]
    failed = [f"{r['name']}: {r['error']}" for r in results if r["status"] != "ok"]
    return ran, failed, any(r["status"] == "input" for r in results)


def cluster_size(ray) -> str:
    resources = ray.cluster_resources()
    gpus = f", {resources['GPU']:g} GPUs" if resources.get("GPU") else ""
    return f"{len(ray.nodes())} node(s), {resources.get('CPU', 0):g} CPUs{gpus}"


def _collect(ray, refs: dict[Run, Any], out: Path, progress: Progress) -> list[dict[str, Any]]:
    """Wait for every cell, saying which run where, and record each finished cell's placement."""
    waiting = {ref: run for run, ref in refs.items()}
    addresses = {node["NodeID"]: node.get("NodeManagerAddress") for node in ray.nodes()}
    results, shown = [], ""
    while waiting:
        ready, _ = ray.wait(list(waiting), num_returns=1, timeout=1.0)
        for ref in ready:
            run = waiting.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as e:  # the worker died on every try, or an unexpected error
                cause = getattr(e, "cause", None) or e
                first = (str(cause).strip().splitlines() or [type(cause).__name__])[-1]
                result = {"name": run.name, "status": "error", "error": f"{type(cause).__name__}: {first}"}
            results.append(result)
            _record(out, run, result, addresses)
            if result["status"] == "ok":
                where = addresses.get(result["node_id"]) or result["host"]
                progress.note(f"✓ {run.name} on {where} in {result['seconds']:.0f} s")
            else:
                progress.note(f"✗ {run.name} left out: {result['error']}")
        running = _running(out, list(waiting.values()), addresses)
        if running and running != shown:
            progress.note(f"running: {running}")
            shown = running
    return results


def _running(out: Path, runs: list[Run], addresses: dict[str, str | None]) -> str:
    """`n1-s0 on 10.0.0.5 (pid 123)`, … for the cells whose task has started and not finished."""
    parts = []
    for run in runs:
        attempts = read_placement(out, run)["attempts"]
        if attempts:
            last = attempts[-1]
            again = f", attempt {len(attempts)}" if len(attempts) > 1 else ""
            where = addresses.get(last.get("node_id")) or last.get("host")
            parts.append(f"{run.name} on {where} (pid {last.get('pid')}{again})")
    return ", ".join(parts)


def _record(out: Path, run: Run, result: dict[str, Any], addresses: dict[str, str | None]) -> None:
    record = read_placement(out, run)
    for attempt in record["attempts"]:
        attempt["node_ip"] = addresses.get(attempt.get("node_id"))
    record["status"] = result["status"]
    if "seconds" in result:  # the cell's own time in its worker, export only
        record["seconds"] = result["seconds"]
    if result["status"] != "ok":
        record["error"] = result["error"]
    write_atomic(placement_path(out, run), json.dumps(record, indent=1))


def _cancel(ray, refs: dict[Run, Any], out: Path, progress: Progress) -> None:
    """Cancel every task, wait for their workers to go, and remove the partial exports they left."""
    if not refs:
        return
    progress.note(f"ray: cancelling {len(refs)} cells")
    for ref in refs.values():
        with contextlib.suppress(Exception):
            ray.cancel(ref, force=True)
    with contextlib.suppress(Exception):
        ray.wait(list(refs.values()), num_returns=len(refs), timeout=30)
    deadline = time.monotonic() + 15  # a killed worker's pid may linger a moment: its partial waits for that
    for run in refs:
        while True:
            remove_stale_partials(run_dir(out, run))
            if not list(run_dir(out, run).parent.glob(f".{run.name}.partial-*")) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
