"""The same 12-cell sweep serially and on a local Ray (docs/ray.md), and how fast a killed cell recovers.

A tiny random Llama (3 layers, the test suite's tokenizer and toy task) at N = 1, 2, full and seeds 0-3:
twelve exports of a few seconds each, so what Ray adds per cell shows and the whole run takes minutes.

- serial: `run_sweep` in this process, one cell after another (torch's default threads).
- ray: `run_sweep_on_ray` with `ray="local"`: a local Ray started here (loopback only), one CPU per cell.
  Both time the cells only (from the call to the start of the reports), Ray's start-up included.
  Overhead per cell = (Ray's wall after start-up x CPUs - the cells' own seconds in their workers) / cells:
  CPU time that went to no cell (scheduling, starting workers, waiting on a dependency).
- recovery: `edgecut sweep --ray local` in a subprocess on a 3-cell grid; once n1-s0 has begun writing its
  artifact, its worker is killed with SIGKILL. Recovery = kill to the retry's start on a new worker; also
  kill to the cell's completion, and the exit code.

The tables (accuracy per cell) of the two sweeps are compared: they must be equal.

    .venv/bin/python benchmarks/ray_sweep.py     # writes benchmarks/results/ray-sweep.json
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "ray-sweep.json"
LAYERS, SEEDS = ("1", "2", "full"), (0, 1, 2, 3)
RECIPE = {"epochs": 2, "lr": 3e-3, "batch_size": 8, "test_size": 40}


def tiny_inputs(root: Path) -> tuple[Path, Path]:
    """The test suite's tiny Llama and toy CSV, built from tests/conftest.py."""
    sys.path.insert(0, str(ROOT / "tests"))
    import conftest
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(conftest.build_tokenizer(root / "tokenizer"))
    model = conftest.tiny_model("llama", tok)
    model.save_pretrained(root / "llama")
    tok.save_pretrained(root / "llama")
    return root / "llama", conftest.write_tiny_csv(root / "tiny.csv")


class Clock:
    """A Progress that notes when the cells end (the reports' first stage begins) and when Ray is up."""

    def __init__(self) -> None:
        from edgecut.pipeline import Progress

        self.start = time.monotonic()
        self.cells_done: float | None = None
        self.submitted: float | None = None
        self.progress = type("Timed", (Progress,), {"stage": self.stage, "note": self.note})()

    @contextlib.contextmanager
    def stage(self, *args):
        if self.cells_done is None and args[-1].startswith("time fp32 and int8"):  # the reports' first stage
            self.cells_done = time.monotonic() - self.start
        yield

    def note(self, *args) -> None:
        text = args[-1]
        if text.startswith("ray:") and self.submitted is None:
            self.submitted = time.monotonic() - self.start


def sweep_settings(model: Path, data: Path, out: Path, ray: str | None):
    from edgecut.pipeline import ExportSettings
    from edgecut.sweeps.sweep import SweepSettings

    base = ExportSettings(model=str(model), data=str(data), labels=("negative", "positive"), **RECIPE)
    options = {"model": str(model), "data": str(data)} | RECIPE
    return SweepSettings(LAYERS, SEEDS, base, options, output=out, baselines=(), ray=ray)


def accuracies(out: Path) -> dict[str, float]:
    return {
        p.parent.name: json.loads(p.read_text())["metrics"]["onnx_accuracy"]
        for p in sorted((out / "runs").glob("*/edgecut.json"))
    }


def timed_sweep(settings) -> tuple[float, float | None]:
    from edgecut.sweeps.sweep import run_sweep
    from edgecut.sweeps.sweep_ray import run_sweep_on_ray

    clock = Clock()
    (run_sweep if settings.ray is None else run_sweep_on_ray)(settings, clock.progress)
    return clock.cells_done or 0.0, clock.submitted


def recovery(model: Path, data: Path, out: Path) -> dict:
    """Kill n1-s0's worker mid-export in a `--ray local` sweep; time until it runs again and completes."""
    args = [sys.executable, "-m", "edgecut.cli", "sweep", "--model", str(model), "--data", str(data)]
    args += ["--labels", "negative,positive", "--layers", "1,2,full", "--seeds", "0", "--epochs", "2"]
    args += ["--lr", "3e-3", "--batch-size", "8", "--test-size", "40", "--baselines", "none"]
    args += ["-o", str(out), "--ray", "local"]
    placement = out / "runs" / "n1-s0.placement.json"

    def attempts() -> list[dict]:
        try:
            return json.loads(placement.read_text())["attempts"]
        except (OSError, ValueError, KeyError):
            return []

    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    sweep = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        while not (attempts() and list((out / "runs").glob(".n1-s0.partial-*"))):
            if sweep.poll() is not None:
                raise RuntimeError("the sweep ended before n1-s0 started: " + sweep.stdout.read()[-2000:])
            time.sleep(0.1)
        killed_at = time.time()
        os.kill(attempts()[0]["pid"], signal.SIGKILL)
        while len(attempts()) < 2 and sweep.poll() is None:
            time.sleep(0.1)
        restarted = attempts()[-1]["started"] - killed_at if len(attempts()) > 1 else None
        while not (out / "runs" / "n1-s0" / "edgecut.json").is_file() and sweep.poll() is None:
            time.sleep(0.1)
        completed = time.time() - killed_at
        output, _ = sweep.communicate(timeout=600)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    return {
        "grid": "N = 1, 2, full; seed 0 (3 cells)",
        "kill_to_retry_start_s": round(restarted, 2) if restarted is not None else None,
        "kill_to_cell_done_s": round(completed, 2),
        "attempts": len(attempts()),
        "exit_code": sweep.returncode,
        "table_complete": sorted(accuracies(out)) == ["n1-s0", "n2-s0", "nfull-s0"],
        "last_line": output.strip().splitlines()[-1] if output.strip() else "",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from importlib.metadata import version

    with tempfile.TemporaryDirectory(prefix="edgecut-ray-bench-") as tmp:
        root = Path(tmp)
        model, data = tiny_inputs(root)
        serial_settings = sweep_settings(model, data, root / "serial", None)
        serial_s, _ = timed_sweep(serial_settings)
        print(f"serial: {serial_s:.1f} s for 12 cells", flush=True)
        ray_s, up_s = timed_sweep(replace(serial_settings, output=root / "ray", ray="local"))
        cell_seconds = [json.loads(p.read_text())["seconds"] for p in (root / "ray" / "runs").glob("*.placement.json")]
        cpus = os.cpu_count() or 1
        overhead = ((ray_s - (up_s or 0.0)) * cpus - sum(cell_seconds)) / len(cell_seconds)
        print(f"ray: {ray_s:.1f} s ({up_s:.1f} s to start), overhead {overhead:.2f} CPU-s per cell", flush=True)
        equal = accuracies(root / "serial") == accuracies(root / "ray")
        recovered = recovery(model, data, root / "kill")
        print(f"recovery: {recovered}", flush=True)
    record = {
        "what": "12-cell tiny-model sweep (tiny Llama, 3 layers; N = 1, 2, full x seeds 0-3), serial vs local Ray",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "note": "a shared machine: other work ran on the same 2 cores at the same time, so times are noisy",
        },
        "versions": {"python": platform.python_version(), "ray": version("ray"), "torch": version("torch")},
        "cells": len(cell_seconds),
        "serial_cells_s": round(serial_s, 1),
        "serial_per_cell_s": round(serial_s / len(cell_seconds), 2),
        "ray_cells_s": round(ray_s, 1),
        "ray_start_s": round(up_s or 0.0, 1),
        "ray_cpus": cpus,
        "ray_cell_in_worker_mean_s": round(sum(cell_seconds) / len(cell_seconds), 2),
        "ray_overhead_cpu_s_per_cell": round(overhead, 2),
        "speedup": round(serial_s / ray_s, 2),
        "tables_equal": equal,
        "kill_recovery": recovered,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
