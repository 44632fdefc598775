"""Every export option declared once (edgecut.settings): the command line, --config run.toml and --like ARTIFACT
all derive from the ExportSettings fields, and an export repeats from a file or from an artifact."""

from __future__ import annotations

import json
from dataclasses import fields

import numpy as np
import pytest
from artifact_helpers import TEMPLATE, edit_manifest
from typer.testing import CliRunner

from edgecut.cli import app
from edgecut.errors import EdgecutError
from edgecut.settings import ExportSettings, checked_settings, cli_option, load_settings, settings_of_file

runner = CliRunner()


def _one_line_error(result, match: str) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert "Traceback" not in result.output and lines[-1].startswith("error:") and match in lines[-1], result.output
    return lines[-1]


def test_every_export_option_is_one_field_with_its_help_and_the_command_derives_from_them():
    """The export command's options are exactly the ExportSettings fields (plus --config and --like), each
    with the field's help: adding a field adds the option, its help and its config key."""
    from typer.main import get_command

    command = get_command(app).commands["export"]
    options = {p.name: p for p in command.params}
    names = {f.name for f in fields(ExportSettings)}
    assert set(options) == names | {"config", "like"}
    for f in fields(ExportSettings):
        assert cli_option(f) is not None and options[f.name].help == cli_option(f).help, f.name
    from edgecut.settings import CheckSettings

    check = {p.name: p for p in get_command(app).commands["check"].params}
    assert set(check) == {f.name for f in fields(CheckSettings)} | {"artifact", "json_out", "junit"}
    assert all(check[f.name].help == cli_option(f).help for f in fields(CheckSettings))
    sweep = {p.name for p in get_command(app).commands["sweep"].params}
    shared = {f.name for f in fields(ExportSettings) if cli_option(f).sweep}
    assert shared <= sweep and "seed" not in sweep and "output" in sweep  # the sweep's own -o and seeds


def test_a_config_file_sets_any_option_and_the_command_line_wins(tmp_path):
    run = tmp_path / "run.toml"
    run.write_text('data = "reviews.csv"\nlayers = 2\nper_class_cap = 100\nlabels = ["neg", "pos"]\nlr = "auto"\n')
    settings = load_settings({"layers": 3}, config=run)
    assert (settings.data, settings.layers, settings.per_class_cap) == ("reviews.csv", 3, 100)
    assert settings.labels == ("neg", "pos") and settings.lr == "auto"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("per_class_cap = 100\nlayrs = 2\n", "unknown key 'layrs' (did you mean layers?)"),
        ("bogus = 1\n", "unknown key 'bogus'; the keys are the field names"),
        ('per_class_cap = "many"\n', "per_class_cap = 'many' is not a whole number"),
        ("labels = 3\n", "labels = 3 is not a list of text"),
        ("force = 1\n", "force = 1 is not true or false"),
        ("layers = [1\n", "is not a readable TOML file"),
        ("layers = 0\n", "--layers 0 is out of range"),  # the field's own validation, as on the command line
    ],
)
def test_a_bad_config_file_is_one_error_line_naming_the_key(tmp_path, text, match):
    run = tmp_path / "run.toml"
    run.write_text(text)
    result = runner.invoke(app, ["export", "--config", str(run), "-o", str(tmp_path / "out")])
    _one_line_error(result, match)
    assert not (tmp_path / "out").exists()


def test_lr_grid_widens_lr_auto_s_grid_from_the_command_line_or_a_config_file(tmp_path):
    from edgecut.model.finetune import learning_rate_grid

    assert learning_rate_grid(ExportSettings(lr="auto").training_recipe()) == [1e-4, 5e-4, 1e-3]  # the default
    run = tmp_path / "run.toml"
    run.write_text('lr = "auto"\nlr_grid = [4, 0.2, 1, 2]\n')
    settings = load_settings({}, config=run)
    assert settings.lr_grid == (0.2, 1.0, 2.0, 4.0)  # lowest first: the grid's top end is its last rate
    assert learning_rate_grid(settings.training_recipe()) == [1e-4, 5e-4, 1e-3, 2e-3]
    assert load_settings({"lr_grid": "1, 0.5"}, config=run).lr_grid == (0.5, 1.0)  # as the command line gives it
    recorded = json.loads(json.dumps(settings.as_dict(), default=str))  # what the manifest keeps, for --like
    assert ExportSettings(**checked_settings(recorded, "--like")).lr_grid == (0.2, 1.0, 2.0, 4.0)
    run.write_text('lr = "auto"\nlr_grid = "0.2,1"\n')
    with pytest.raises(EdgecutError, match="lr_grid = '0.2,1' is not a list of numbers"):
        load_settings({}, config=run)


@pytest.mark.parametrize(
    ("given", "match"),
    [
        (["--lr-grid", "0.2,1,4"], "--lr-grid is the grid of --lr auto: add --lr auto"),
        (["--lr", "5e-4", "--lr-grid", "0.2,1,4"], "--lr-grid is the grid of --lr auto: add --lr auto"),
        (["--lr", "auto", "--lr-grid", "2"], "give at least two distinct positive factors"),
        (["--lr", "auto", "--lr-grid", "1,1"], "give at least two distinct positive factors"),
        (["--lr", "auto", "--lr-grid", "0,1"], "give at least two distinct positive factors"),
        (["--lr", "auto", "--lr-grid", "1,fast"], "--lr-grid 1,fast: give factors of the family's rate"),
    ],
)
def test_a_bad_lr_grid_is_one_error_line_before_any_work(tmp_path, given, match):
    result = runner.invoke(app, ["export", "--model", "m", "--data", "d.csv", *given, "-o", str(tmp_path / "out")])
    _one_line_error(result, match)
    assert not (tmp_path / "out").exists()


def test_a_missing_config_file_is_named(tmp_path):
    with pytest.raises(EdgecutError, match=r"--config .*nope.toml does not exist"):
        settings_of_file(tmp_path / "nope.toml")


@pytest.mark.slow  # two exports; the default suite's budget is spent on one export per feature
def test_like_repeats_an_artifact_and_one_config_gives_the_same_golden_logits(tiny_model_dirs, tiny_csv, tmp_path):
    """An export from a config file, then one `--like` it: the second records exactly the first's settings (but
    its own --output) and, trained on the same machine from the same seed, gives the same golden logits."""
    run = tmp_path / "run.toml"
    run.write_text(
        f"model = {json.dumps(str(tiny_model_dirs['llama']))}\ndata = {json.dumps(str(tiny_csv))}\n"
        f'labels = ["negative", "positive"]\ntemplate = {json.dumps(TEMPLATE)}\nlr = 2e-3\nbatch_size = 8\n'
        'test_size = 40\nepochs = 1\nbaseline = "none"\n'
    )
    first = runner.invoke(app, ["export", "--config", str(run), "-o", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, ["export", "--like", str(tmp_path / "a"), "-o", str(tmp_path / "b")])
    assert second.exit_code == 0, second.output
    a, b = (json.loads((tmp_path / d / "edgecut.json").read_text()) for d in "ab")
    assert {k: v for k, v in a["settings"].items() if k != "output"} == {
        k: v for k, v in b["settings"].items() if k != "output"
    }
    assert b["settings"]["output"] == str(tmp_path / "b") and a["settings"]["lr"] == 2e-3
    golden = [np.load(tmp_path / d / "golden.npz")["logits"] for d in "ab"]
    np.testing.assert_array_equal(golden[0], golden[1])

    # --like with an override, and an artifact of another manifest version: one line, exit 2
    result = runner.invoke(app, ["export", "--like", str(tmp_path / "a"), "--layers", "0", "-o", str(tmp_path / "c")])
    _one_line_error(result, "--layers 0 is out of range")
    edit_manifest(tmp_path / "b", manifest_version=99)
    result = runner.invoke(app, ["export", "--like", str(tmp_path / "b"), "-o", str(tmp_path / "c")])
    _one_line_error(result, "--like")
    edit_manifest(tmp_path / "a", settings=a["settings"] | {"from_the_future": 1})
    result = runner.invoke(app, ["export", "--like", str(tmp_path / "a"), "-o", str(tmp_path / "c")])
    _one_line_error(result, "unknown key 'from_the_future'")
    assert not (tmp_path / "c").exists()
