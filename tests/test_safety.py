"""Nothing lost: what --force may replace, races at the final rename, unwritable outputs, directory modes,
and deploy --force. (Stops from outside: tests/test_stops.py; network traffic: tests/test_no_network.py.)

Most cases need no model: they drive `edgecut.artifacts.artifact` directly or fail before any model loads.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from artifact_helpers import snapshot, user_dir
from typer.testing import CliRunner

from edgecut import atomic
from edgecut.artifacts.artifact import (
    STAGING,
    check_destination,
    file_starts_with,
    scratch_dir,
    staging,
)
from edgecut.atomic import rename_noreplace
from edgecut.cli import app
from edgecut.errors import EdgecutError, OutputExistsError, OutputNotWritableError

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
    return user_dir(tmp / "out"), []


def _symlink_to_plain_dir(tmp: Path):
    (tmp / "out").symlink_to(user_dir(tmp / "real"), target_is_directory=True)
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
    before = None if out.resolve() == Path("/") else snapshot(out)
    with pytest.raises(OutputExistsError) as e:
        check_destination(out, force, protected)
    assert words in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(OutputExistsError):  # staging refuses the same, before creating anything
        with staging(out, force, protected):
            pytest.fail("staging yielded")
    assert before is None or snapshot(out) == before


def test_force_replaces_an_artifact_and_leaves_nothing_beside_it(workdir):
    out = _fake_artifact(workdir / "sub" / "art")
    hub_id = Path("gpt2")  # a hub id is not a path: ignored, whatever the directory holds
    with staging(out, True, protected=[hub_id]) as tmp:
        (tmp / "model.onnx").write_bytes(b"new model")
    assert snapshot(out) == _snapshot_of({"model.onnx": b"new model"})
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
    user_dir(path)


def _plain_file(path: Path) -> None:
    path.write_text("notes", encoding="utf-8")


def _dangling_symlink(path: Path) -> None:
    path.symlink_to(path.parent / "nowhere")


def _artifact_replaced_by_user_dir(path: Path) -> None:
    shutil.rmtree(path)
    user_dir(path)


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
            before = snapshot(out) if out.exists() else None
            target = os.readlink(out) if out.is_symlink() else None
    assert words in str(e.value) and str(out) in str(e.value)
    assert (os.readlink(out) if out.is_symlink() else None) == target
    if before is not None:
        assert snapshot(out) == before  # the newcomer is intact, the new artifact is not in it
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
    before = snapshot(out)
    with pytest.raises(RuntimeError, match="boom"):
        with staging(out, True) as tmp:
            (scratch_dir(tmp) / "checkpoint.pt").write_bytes(b"x")
            raise RuntimeError("boom")
    assert snapshot(out) == before
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
    model = user_dir(tmp / "model")
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
    before = snapshot(tmp_path)
    result = runner.invoke(app, ["export", "--model", str(model), "--data", str(data), "-o", str(out), "--force"])
    assert result.exit_code == 2, result.output
    assert "--force will not replace" in result.output and words in result.output
    assert snapshot(tmp_path) == before


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

    user = user_dir(repo / "theirs")
    (user / "config.pbtxt").write_text('name: "theirs"\n')  # a hand-written Triton model
    before = snapshot(user)
    refused = _deploy(art, "--triton", repo, "--name", "theirs", "--force")
    assert refused.exit_code == 2, refused.output
    assert "--force will not replace" in refused.output and "config.pbtxt written by edgecut" in refused.output
    assert snapshot(user) == before


def test_deploy_force_never_replaces_the_artifact_being_deployed(tiny_artifact, tmp_path):
    art = shutil.copytree(tiny_artifact, tmp_path / "art")
    (art / "config.pbtxt").write_text(TRITON_HEADER + " (edgecut 0.1.0).\n")  # even if it looks deployed
    before = snapshot(art)
    for repo, name in [(art.parent, art.name), (art.parent.parent, art.parent.name)]:
        result = _deploy(art, "--triton", repo, "--name", name, "--force")
        assert result.exit_code == 2, result.output
        assert "--force will not replace" in result.output and "the input" in result.output
    assert snapshot(art) == before
