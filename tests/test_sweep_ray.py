"""`sweep --ray` against a real Ray cluster on the loopback address (2 CPUs), and Ray Data batch prediction.

The cluster is started here (`ray.init` in this process, 127.0.0.1 only); each sweep is the CLI in a
subprocess that joins it (`--ray 127.0.0.1:PORT`), so the tests can kill its workers and signal the sweep.
Faults are real: a worker killed with SIGKILL mid-cell, a cell with bad input, a SIGINT to the sweep.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgecut.cli import app
from edgecut.errors import EdgecutError
from edgecut.pipeline import ExportSettings
from edgecut.sweeps.sweep import FULL, Run, SweepSettings

runner = CliRunner()
GRID = ("--labels", "negative,positive", "--seeds", "0", "--epochs", "2", "--lr", "3e-3", "--batch-size", "8")
GRID += ("--test-size", "40")


def sweep_args(model_dir: Path, data: Path, out: Path, layers: str, *extra: str) -> list[str]:
    return ["sweep", "--model", str(model_dir), "--data", str(data), "--layers", layers, *GRID, "-o", str(out), *extra]


def _descendants(pid: int) -> set[int]:
    """Every live process below `pid` (Ray's servers and workers that this process started)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _kill_all(pids: set[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a killed child of the raylet may linger as a zombie for a moment
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def ray_cluster():
    """A Ray head on 127.0.0.1 with 2 CPUs; shut down, and whatever it left killed, at the end."""
    from edgecut.sweeps.sweep_ray import LOOPBACK_ONLY

    before = os.environ.get(LOOPBACK_ONLY)
    os.environ[LOOPBACK_ONLY] = "0"  # before ray is imported: every Ray server on the loopback only
    import ray

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=128 * 1024**2, log_to_driver=False)
    address = ray.get_runtime_context().gcs_address
    try:
        assert address.startswith("127.0.0.1:"), address
        yield address
    finally:
        started = _descendants(os.getpid())
        ray.shutdown()
        _kill_all(started)
        if before is None:
            os.environ.pop(LOOPBACK_ONLY, None)
        else:
            os.environ[LOOPBACK_ONLY] = before


def _env() -> dict[str, str]:
    return dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")


def _cli(args: list[str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "edgecut.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
        start_new_session=True,
        **kwargs,
    )


# Waits sized for a loaded 2-core machine: a worker imports torch and transformers before it exports; the waits
# end as soon as the state is reached, so a generous bound costs nothing when all goes well.
WAIT_S = 300


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _attempts(out: Path, name: str) -> list[dict]:
    try:
        return json.loads((out / "runs" / f"{name}.placement.json").read_text())["attempts"]
    except (OSError, ValueError, KeyError):
        return []


def _partials(out: Path) -> list[Path]:
    return [p for p in (out / "runs").glob(".*") if ".partial-" in p.name]


def _accuracies(out: Path) -> dict[int, float]:
    return {row["layers"]: row["accuracy_mean"] for row in json.loads((out / "sweep.json").read_text())["rows"]}


@pytest.fixture(scope="module")
def serial(tiny_model_dirs, tiny_csv, tmp_path_factory) -> Path:
    """The reference: the same grid, run serially in this process."""
    out = tmp_path_factory.mktemp("serial") / "s"
    result = runner.invoke(app, sweep_args(tiny_model_dirs["llama"], tiny_csv, out, "1,full"))
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.ray
def test_a_worker_killed_mid_cell_is_retried_and_the_table_equals_a_serial_run(
    ray_cluster, serial, tiny_model_dirs, tiny_csv, tmp_path
):
    """kill -9 of the worker exporting n1-s0, once its partial artifact exists: Ray runs the cell again on
    a new worker, the sweep exits 0, and every cell's accuracy equals the serial run's."""
    out = tmp_path / "s"
    sweep = _cli(sweep_args(tiny_model_dirs["llama"], tiny_csv, out, "1,full", "--ray", ray_cluster))
    try:
        (first,) = _wait_for(lambda: _attempts(out, "n1-s0"), WAIT_S, "n1-s0 to start")
        _wait_for(lambda: _partials(out), WAIT_S, "an export's partial directory")
        os.kill(first["pid"], signal.SIGKILL)
        output, _ = sweep.communicate(timeout=300)
    finally:
        _kill_all({sweep.pid} if sweep.poll() is None else set())
    assert sweep.returncode == 0, output[-3000:]
    attempts = _attempts(out, "n1-s0")
    assert len(attempts) == 2 and attempts[1]["pid"] != first["pid"], attempts
    assert all(a["node_ip"] == "127.0.0.1" for a in attempts)
    assert "attempt 2" in output  # the progress says the cell runs again
    assert _accuracies(out) == _accuracies(serial) and sorted(_accuracies(out)) == [1, 3]
    for name in ("n1-s0", "nfull-s0"):
        serial_metrics = json.loads((serial / "runs" / name / "edgecut.json").read_text())["metrics"]
        ray_metrics = json.loads((out / "runs" / name / "edgecut.json").read_text())["metrics"]
        assert ray_metrics["onnx_accuracy"] == serial_metrics["onnx_accuracy"], name
        assert ray_metrics["torch_accuracy"] == serial_metrics["torch_accuracy"], name
    assert _partials(out) == []
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/edgecut.json")}
    again = runner.invoke(app, sweep_args(tiny_model_dirs["llama"], tiny_csv, out, "1,full", "--ray", ray_cluster))
    assert again.exit_code == 0 and "(2 already done)" in again.output, again.output  # resumed: nothing rerun
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps and len(stamps) == 2


@pytest.mark.ray
def test_a_cell_with_bad_input_is_not_retried_and_is_one_line_on_a_local_ray(tiny_model_dirs, tiny_csv, tmp_path):
    """`--layers 9` on a 3-layer model fails in its own cell: reported once in the last line (exit 2), never
    run again; the other cell finishes and is reported. `--ray local` starts (and stops) its own Ray."""
    out = tmp_path / "s"
    sweep = _cli(sweep_args(tiny_model_dirs["llama"], tiny_csv, out, "1,9", "--ray", "local"))
    try:
        output, _ = sweep.communicate(timeout=300)
    finally:
        _kill_all({sweep.pid} if sweep.poll() is None else set())
        try:  # whatever the local Ray left in the sweep's session
            os.killpg(sweep.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    assert sweep.returncode == 2, output[-3000:]
    assert "Traceback" not in output
    last = output.strip().splitlines()[-1]
    assert last.startswith("error: 1 run(s) left out") and "n9-s0: --layers 9 is out of range" in last, last
    assert len(_attempts(out, "n9-s0")) == 1  # not retried
    assert not (out / "runs" / "n9-s0").exists() and _partials(out) == []
    assert sorted(_accuracies(out)) == [1]
    assert [a["node_ip"] for a in _attempts(out, "n1-s0")] == ["127.0.0.1"]  # a loopback-only local Ray


@pytest.mark.ray
@pytest.mark.parametrize(
    ("signum", "code", "word"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")]
)
def test_a_stopped_sweep_cancels_its_ray_tasks_and_leaves_no_partial_artifact(
    signum, code, word, ray_cluster, tiny_model_dirs, tiny_csv, tmp_path
):
    """Ctrl-C (or SIGTERM) of a sweep on a shared cluster: its tasks are cancelled (their workers are gone),
    no cell's partial directory stays in runs/, nothing is published, and the exit is 130 (143) in one line."""
    out = tmp_path / "s"
    sweep = _cli(sweep_args(tiny_model_dirs["llama"], tiny_csv, out, "1,2", "--ray", ray_cluster))
    try:
        _wait_for(lambda: _attempts(out, "n1-s0") and _attempts(out, "n2-s0"), WAIT_S, "both cells to start")
        _wait_for(lambda: _partials(out), WAIT_S, "an export's partial directory")
        workers = {_attempts(out, n)[0]["pid"] for n in ("n1-s0", "n2-s0")}
        sweep.send_signal(signum)
        output, _ = sweep.communicate(timeout=120)
    finally:
        _kill_all({sweep.pid} if sweep.poll() is None else set())
    assert sweep.returncode == code, output[-3000:]
    assert output.strip().splitlines()[-1].startswith(f"error: {word}:") and "Traceback" not in output
    _wait_for(lambda: not any(_alive(pid) for pid in workers), 30, "the cancelled workers to exit")
    assert _partials(out) == [] and not (out / "runs" / "n1-s0").exists() and not (out / "runs" / "n2-s0").exists()
    assert not (out / "sweep.json").exists()


@pytest.mark.ray
def test_ray_data_batch_prediction_equals_edgecut_predict(ray_cluster, tiny_artifact, tmp_path):
    """examples/ray_batch_predict.py, joined to the cluster: 3000 rows through `map_batches(ArtifactPredictor,
    ...)` on two actors get the same labels and scores as `edgecut predict` on the same texts."""
    import pyarrow.parquet as pq
    from conftest import write_tiny_csv

    data = write_tiny_csv(tmp_path / "rows.csv", rows=3000)
    texts = [line.split(",")[0] for line in data.read_text().splitlines()[1:]]
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n")
    predicted = runner.invoke(app, ["predict", str(tiny_artifact), "--file", str(tmp_path / "texts.txt")])
    assert predicted.exit_code == 0, predicted.output[-2000:]
    expected = [json.loads(line) for line in predicted.output.splitlines() if line.startswith("{")]
    assert len(expected) == 3000

    example = Path(__file__).resolve().parents[1] / "examples" / "ray_batch_predict.py"
    args = [sys.executable, str(example), str(tiny_artifact), str(data), str(tmp_path / "labelled")]
    args += ["--address", ray_cluster, "--workers", "2", "--batch-size", "500"]
    done = subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = pq.read_table(tmp_path / "labelled").to_pylist()
    assert len(rows) == 3000
    by_text = {row["text"]: row for row in rows}
    labels = ("negative", "positive")
    for text, want in zip(texts, expected, strict=True):
        got = by_text[text]
        assert got["predicted"] == want["label"], text
        for label in labels:
            assert got[f"score_{label}"] == pytest.approx(want["scores"][label], abs=1e-5), text
        assert got["score"] == pytest.approx(want["scores"][want["label"]], abs=1e-5)
    assert {want["label"] for want in expected} == set(labels)  # a real classifier, not one constant


def test_a_cell_asks_ray_for_a_gpu_only_where_it_needs_one():
    """No GPU here: what is checked is the request each cell would be submitted with."""
    from edgecut.sweeps.sweep_ray import cell_resources

    def settings(teacher_gpu: bool = False, **changes):
        base = ExportSettings(**changes)
        return SweepSettings(("1", FULL), (0,), base, options={}, ray="local", teacher_gpu=teacher_gpu)

    cpu, teacher = settings(), settings(teacher_gpu=True)
    assert cell_resources(cpu, Run(FULL, 0)) == {"num_cpus": 1, "num_gpus": 0}
    assert cell_resources(teacher, Run(FULL, 0)) == {"num_cpus": 1, "num_gpus": 1}
    assert cell_resources(teacher, Run("1", 0)) == {"num_cpus": 1, "num_gpus": 0}
    assert cell_resources(teacher, Run(FULL, 0, "minilm")) == {"num_cpus": 1, "num_gpus": 0}  # a baseline
    for target in ("cuda", "tensorrt"):
        assert cell_resources(settings(target=target), Run("1", 0)) == {"num_cpus": 1, "num_gpus": 1}
    assert cell_resources(settings(target="cpu-int8"), Run("1", 0))["num_gpus"] == 0


def test_without_ray_installed_sweep_ray_is_one_line_naming_the_extra(tiny_csv, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    result = runner.invoke(app, sweep_args(Path("unused-model"), tiny_csv, tmp_path / "s", "1", "--ray", "local"))
    assert result.exit_code == 2 and "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error:") and "pip install 'edgecut[ray]'" in last


@pytest.mark.parametrize(
    ("extra", "match"),
    [(["--teacher-gpu"], "add --ray local"), (["--ray", "local", "--shard", "1/2"], "drop --shard")],
)
def test_ray_options_that_do_not_go_together_are_refused(extra, match, tmp_path):
    result = runner.invoke(app, ["sweep", *extra, "-o", str(tmp_path / "s")])
    assert result.exit_code == 2 and result.output.strip().splitlines()[-1].startswith("error:")
    assert match in result.output
    with pytest.raises(EdgecutError, match=match):
        SweepSettings(layers=("1",), seeds=(0,), base=ExportSettings(), options={}, **_settings_of(extra))


def _settings_of(extra: list[str]) -> dict:
    return {"teacher_gpu": True} if extra == ["--teacher-gpu"] else {"ray": "local", "shard": (1, 2)}


@pytest.mark.ray
def test_teacher_gpu_on_a_cluster_without_gpus_is_one_line_before_any_cell(
    ray_cluster, tiny_model_dirs, tiny_csv, tmp_path
):
    """A GPU request no node can meet would wait for ever: refused up front, nothing run."""
    out = tmp_path / "s"
    args = sweep_args(tiny_model_dirs["llama"], tiny_csv, out, "1,full", "--ray", ray_cluster, "--teacher-gpu")
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    last = " ".join(result.output.split()).split("error:")[-1]
    assert "nfull-s0 need a GPU" in last and "drop --teacher-gpu" in last and "n1-s0" not in last
    assert not list((out / "runs").glob("*.placement.json"))


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_a_ray_address_nobody_listens_on_is_one_line_in_seconds(scheme, tiny_csv, tmp_path):
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens on it now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    began = time.monotonic()
    args = sweep_args(Path("unused-model"), tiny_csv, tmp_path / "s", "1", "--ray", f"{scheme}127.0.0.1:{port}")
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    last = " ".join(result.output.split()).split("error:")[-1]
    assert "nothing answers there" in last and "--ray local" in last
    assert time.monotonic() - began < 60  # Ray itself would retry for minutes
