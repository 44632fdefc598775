"""The job-array examples run as written: examples/slurm_sweep.sbatch and examples/k8s-sweep-job.yaml.

Each runs its own commands here, one shard per index with the scheduler's index variables set, over one
sweep directory of a tiny model; the merged report must equal a single-machine sweep of the same grid.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARDS = 2


def _grid(model_dir: Path, data: Path, out: Path) -> list[str]:
    return [
        "--model",
        str(model_dir),
        "--data",
        str(data),
        "--labels",
        "negative,positive",
        "--layers",
        "1,2",
        "--seeds",
        "0",
        "--epochs",
        "2",
        "--lr",
        "3e-3",
        "--batch-size",
        "8",
        "--test-size",
        "40",
        "-o",
        str(out),
    ]


def _env(**extra: str) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)  # the venv's edgecut, as the job's image would have it
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ["PATH"], HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    return env | extra


def _rows(out: Path) -> list[tuple[int, float]]:
    report = json.loads((out / "sweep.json").read_text())
    return [(row["layers"], row["accuracy_mean"]) for row in report["rows"]]


@pytest.fixture(scope="module")
def one_machine(tiny_model_dirs, tiny_csv, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one") / "s"
    args = [sys.executable, "-m", "edgecut.cli", "sweep", *_grid(tiny_model_dirs["llama"], tiny_csv, out)]
    done = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(), timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
    return out


def _check_merged(out: Path, one_machine: Path, logs: list[str]) -> None:
    assert _rows(out) == _rows(one_machine) and [n for n, _ in _rows(out)] == [1, 2]
    assert sorted(p.name for p in (out / "runs").iterdir() if p.is_dir()) == ["n1-s0", "n2-s0"]
    shard_logs = logs[:-1]
    assert all("1 runs (0 already done)" in log for log in shard_logs), shard_logs  # disjoint shards


@pytest.mark.slow
def test_the_slurm_array_script_shards_the_grid_and_reports(one_machine, tiny_model_dirs, tiny_csv, tmp_path):
    out = tmp_path / "s"
    script = ROOT / "examples" / "slurm_sweep.sbatch"
    grid = _grid(tiny_model_dirs["llama"], tiny_csv, out)
    logs = []
    for task in range(1, SHARDS + 1):  # sbatch --array=1-2
        env = _env(SLURM_ARRAY_TASK_ID=str(task), SLURM_ARRAY_TASK_MIN="1", SLURM_ARRAY_TASK_COUNT=str(SHARDS))
        done = subprocess.run(
            ["bash", str(script), *grid],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout[-3000:]
        assert not (out / "sweep.json").exists()  # a shard does not report
        logs.append(done.stdout)
    env = {k: v for k, v in _env().items() if not k.startswith("SLURM_")}  # the dependent job: no array
    done = subprocess.run(
        ["bash", str(script), *grid], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:]
    _check_merged(out, one_machine, [*logs, done.stdout])


@pytest.mark.slow
def test_the_kubernetes_indexed_job_shards_the_grid_and_reports(one_machine, tiny_model_dirs, tiny_csv, tmp_path):
    out = tmp_path / "s"
    cells, report = yaml.safe_load_all((ROOT / "examples" / "k8s-sweep-job.yaml").read_text())
    assert cells["spec"]["completionMode"] == "Indexed"
    (container,) = cells["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert int(env["SHARDS"]) == cells["spec"]["completions"]
    (report_container,) = report["spec"]["template"]["spec"]["containers"]
    report_env = {e["name"]: e["value"] for e in report_container["env"]}
    assert report_env["SWEEP_ARGS"] == env["SWEEP_ARGS"]  # both Jobs sweep the same grid
    grid = " ".join(_grid(tiny_model_dirs["llama"], tiny_csv, out))  # this test's grid in the manifest's place
    logs = []
    for index in range(SHARDS):  # completions: 2 here
        pod = _env(**env | {"SWEEP_ARGS": grid, "SHARDS": str(SHARDS), "JOB_COMPLETION_INDEX": str(index)})
        done = subprocess.run(
            container["command"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=pod, timeout=600
        )
        assert done.returncode == 0, done.stdout[-3000:]
        logs.append(done.stdout)
    pod = _env(SWEEP_ARGS=grid)
    done = subprocess.run(
        report_container["command"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=pod, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:]
    _check_merged(out, one_machine, [*logs, done.stdout])
