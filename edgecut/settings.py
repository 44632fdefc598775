"""Every option, declared once: name, type, default, help and validation (`ExportSettings`, `CheckSettings`).

Each field's `option(...)` metadata carries its help and how the command line spells it; the `edgecut export`
command, the options `edgecut sweep` shares with it, `--config run.toml`, `--like ARTIFACT` and the CLI
reference are all derived from these fields. Adding an option means adding one field here (and using it in
the stage that needs it).

    # run.toml: keys are the field names the manifest records under "settings"
    data = "reviews.csv"
    layers = 2
    per_class_cap = 100

`load_settings` merges, from lowest to highest: the field defaults, the settings an artifact recorded
(`--like`), a TOML file (`--config`), the options given on the command line.
"""

from __future__ import annotations

import difflib
import math
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from edgecut.errors import EdgecutError
from edgecut.model.data import split_list
from edgecut.model.prompt import unescape_template

SETTINGS = ("lm", "pcls", "cls")  # the paper's three fine-tuning settings
PLAIN_TEMPLATE = "{text}{label}"  # cls: the text alone, no template words
QUANTIZE = ("none", "int8", "fp16")
BASELINE_CHOICES = ("tfidf", "none")  # the floor every export fits beside the model
NOT_REPEATED = ("output", "force")  # what --like does not take from the artifact: where to write, and --force


@dataclass(frozen=True)
class Option:
    """How the command line spells a settings field."""

    help: str
    names: tuple[str, ...] = ()  # short names ("-m"), or one "--x/--no-x" pair for a three-state flag
    cli_type: Any = None  # what the command line hands over, when it is not the field's type
    parse: Callable[[Any], Any] | None = None  # command-line value -> field value
    sweep: bool = False  # `edgecut sweep` has it too: every run of the grid shares it


def option(default: Any, help: str, **cli: Any) -> Any:
    """A settings field with its command-line spelling (`Option`)."""
    return field(default=default, metadata={"cli": Option(help, **cli)})


def cli_option(f) -> Option | None:
    return f.metadata.get("cli")


def parse_lr_grid(value: str | list | tuple) -> tuple[float, ...]:
    """`--lr-grid 0.2,1,2,4` (or a config file's list) -> the distinct factors, lowest first: the grid's ends
    are where `--lr auto` looks for a winner at the edge."""
    try:
        factors = sorted({float(f) for f in (split_list(value) if isinstance(value, str) else value)})
    except (TypeError, ValueError):
        raise EdgecutError(f"--lr-grid {value}: give factors of the family's rate, e.g. 0.2,1,2") from None
    if len(factors) < 2 or not all(math.isfinite(f) and f > 0 for f in factors):
        raise EdgecutError(f"--lr-grid {value}: give at least two distinct positive factors, e.g. 0.2,1,2")
    return tuple(factors)


@dataclass(frozen=True)
class ExportSettings:
    """Everything an export needs; the `edgecut export` options, one field each.

    `None` for a recipe override means "the recipe's value". Raises EdgecutError naming the option to fix.
    """

    model: str = option("smollm2-135m", "Local dir, .gguf file, hub id, or alias.", names=("-m",), sweep=True)
    data: str = option(
        "rotten-tomatoes", "CSV/JSONL file or built-in set (rotten-tomatoes, bbc-news).", names=("-d",), sweep=True
    )
    layers: int | str = option(
        1, "Keep N transformer layers (a number, or 'full' for all).", names=("-n",), cli_type=str
    )
    select: str = option(
        "first", "Which N layers: first (the paper), block-influence (ShortGPT) or angular (Gromov).", sweep=True
    )
    target: str = option("cpu", "Target name (see `edgecut targets`) or path to a .toml file.", sweep=True)
    output: Path = option(Path("edgecut-out"), "Artifact directory to create.", names=("-o",))
    force: bool = option(False, "Replace an existing edgecut artifact at --output.")
    labels: tuple[str, ...] = option(
        (), "Comma-separated class names, in class order.", cli_type=str, parse=split_list, sweep=True
    )
    label_words: tuple[str, ...] = option(
        (),
        "Comma-separated label words, one per class, or label=word pairs (a leading space is added).",
        cli_type=str,
        parse=split_list,
        sweep=True,
    )
    template: str | None = option(
        None,
        r'Prompt template with {text} and a final {label}, e.g. "Review: {text}\nSentiment:{label}" '
        r"(\n and \t are a newline and a tab).",
        parse=lambda value: unescape_template(value) if value else value,
        sweep=True,
    )
    text_column: str = option("text", "Text column of the data file.", sweep=True)
    label_column: str = option("label", "Label column of the data file.", sweep=True)
    setting: str = option(
        "lm",
        "The paper's settings: lm (prompt + label-word head, default), pcls (prompt + random head), "
        "cls (plain text + random head).",
        sweep=True,
    )
    recipe: str = option("cpu", "Training preset: cpu (fast, default) or paper (the paper's recipe).", sweep=True)
    epochs: float | None = option(None, "Override the recipe's epochs.", sweep=True)
    batch_size: int | None = option(None, "Override the recipe's batch size.", sweep=True)
    lr: float | str | None = option(
        None,
        "Learning rate: a number overrides the recipe's; auto trains one run per rate of a grid around the "
        "family's rate (--lr-grid; 3 rates, 3x the training time, by default) and keeps the best on validation.",
        cli_type=str,
        sweep=True,
    )
    lr_grid: tuple[float, ...] | None = option(
        None,
        "--lr auto's grid: factors of the family's rate, comma-separated (default 0.2,1,2); one training each.",
        cli_type=str,
        sweep=True,
    )
    per_class_cap: int | None = option(None, "Override the recipe's training rows per class.", sweep=True)
    max_length: int | None = option(None, "Override the recipe's prompt length in tokens.")
    demos: bool | None = option(None, "One demonstration per class in each prompt.", names=("--demos/--no-demos",))
    time_budget: float | None = option(
        None, "Stop training (evaluation included) after this many seconds; also bounds the TF-IDF floor.", sweep=True
    )
    seed: int = option(0, "Seed for splits and training.")
    test_size: int = option(1000, "Test rows (at most a fifth of the data).", sweep=True)
    quantize: str = option("none", "none (the target's precision), int8 or fp16, where the target allows it.")
    trust_remote_code: bool = option(False, "Allow model code from the hub (off by default).")
    vocab: str = option("all", "Embedding rows: all, task (ids of the training data), auto (task if enough) or N.")
    vocab_corpus: Path | None = option(None, "More texts (one a line) whose ids --vocab task keeps.")
    teacher: Path | None = option(None, "An edgecut artifact to distil from (same labels).")
    unlabeled: Path | None = option(None, "Texts the teacher labels for the student (one a line, or CSV/JSONL).")
    distill_alpha: float = option(0.5, "Weight of the labels vs the teacher's soft targets.")
    distill_temperature: float = option(2.0, "Softmax temperature of the distillation.")
    with_tokenizer: bool = option(False, "Also write model_text.onnx: raw text in (prompt and tokenizer in the graph).")
    pooling: str = option("auto", "Decoders: mean (all tokens) or last (the paper); auto: mean.", sweep=True)
    baseline: str = option(
        "tfidf",
        "The floor fitted on the same rows: tfidf (features and C chosen on validation, bounded by --time-budget) "
        "or none.",
    )

    def __post_init__(self) -> None:
        from edgecut.model.classifier import POOLING_CHOICES
        from edgecut.model.select import METHODS
        from edgecut.model.vocab import parse_vocab

        layers = self.layers
        if isinstance(layers, str) and layers != "full":
            layers = int(layers) if layers.strip().isdigit() else layers
            object.__setattr__(self, "layers", layers)
        if layers != "full" and (isinstance(layers, bool) or not isinstance(layers, int) or layers < 1):
            raise EdgecutError(f"--layers {self.layers} is out of range: keep at least 1 layer, or 'full'")
        if self.select not in METHODS:
            raise EdgecutError(f"--select {self.select}: use one of {', '.join(METHODS)}")
        if self.setting not in SETTINGS:
            raise EdgecutError(f"--setting {self.setting}: use one of {', '.join(SETTINGS)}")
        if self.setting == "cls" and self.template:
            raise EdgecutError("--setting cls classifies the plain text: drop --template (or use --setting pcls)")
        if self.quantize not in QUANTIZE:
            raise EdgecutError(f"--quantize {self.quantize}: use one of {', '.join(QUANTIZE)}")
        if self.test_size < 1:
            raise EdgecutError(f"--test-size {self.test_size} must be at least 1 (test rows)")
        if self.baseline not in BASELINE_CHOICES:
            raise EdgecutError(f"--baseline {self.baseline}: use one of {', '.join(BASELINE_CHOICES)}")
        if self.pooling not in POOLING_CHOICES:
            raise EdgecutError(f"--pooling {self.pooling}: use one of {', '.join(POOLING_CHOICES)}")
        if self.vocab_corpus is not None and parse_vocab(self.vocab).mode not in ("task", "auto"):
            raise EdgecutError(
                "--vocab-corpus adds ids to --vocab task or auto: add --vocab task (or drop --vocab-corpus)"
            )
        if self.unlabeled is not None and self.teacher is None:
            raise EdgecutError("--unlabeled texts are labelled by a teacher: add --teacher ARTIFACT")
        if not 0.0 <= self.distill_alpha <= 1.0:
            raise EdgecutError(f"--distill-alpha {self.distill_alpha:g} must be within 0..1 (1: labels only)")
        if not self.distill_temperature > 0:
            raise EdgecutError(f"--distill-temperature {self.distill_temperature:g} must be above 0")
        if isinstance(self.lr, str):  # "auto", or a number given as text (a config file, the CLI)
            lr = self.lr.strip().lower()
            try:
                object.__setattr__(self, "lr", lr if lr == "auto" else float(lr))
            except ValueError:
                raise EdgecutError(f"--lr {self.lr}: give a learning rate (e.g. 5e-4) or auto") from None
        if isinstance(self.lr, float) and not (math.isfinite(self.lr) and self.lr > 0):
            raise EdgecutError(f"--lr {self.lr:g} must be a positive number (or auto)")
        if self.lr_grid is not None:
            object.__setattr__(self, "lr_grid", parse_lr_grid(self.lr_grid))
            if self.lr != "auto":
                raise EdgecutError("--lr-grid is the grid of --lr auto: add --lr auto (or drop --lr-grid)")
        for name in ("output", "vocab_corpus", "teacher", "unlabeled"):  # a config file gives paths as text
            value = getattr(self, name)
            object.__setattr__(self, name, None if value is None else Path(value))
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "label_words", tuple(self.label_words))
        self.training_recipe()  # an unknown recipe or a non-positive override fails here

    def training_recipe(self, config=None):
        """The named recipe with this export's overrides and seed (`edgecut.model.finetune.Recipe`). With the
        model's `config`, the family's rule chooses the learning rate unless `lr` is given (an encoder's rate,
        Gemma's cap, the full-depth `lm` cap: finetune.get_recipe)."""
        from edgecut.model.finetune import get_recipe
        from edgecut.model.load import ENCODER_TYPES

        depth = getattr(config, "num_hidden_layers", None)
        full_depth = depth is not None and self.setting == "lm" and self.layers in ("full", depth)
        model_type = getattr(config, "model_type", None)
        return get_recipe(
            self.recipe,
            model_type,
            full_depth,
            encoder=model_type in ENCODER_TYPES,
            epochs=self.epochs,
            batch_size=self.batch_size,
            learning_rate=None if self.lr == "auto" else self.lr,
            learning_rate_factors=self.lr_grid,
            per_class_cap=self.per_class_cap,
            max_length=self.max_length,
            demonstrations=self.demos,
            time_budget_s=self.time_budget,
            seed=self.seed,
        )

    def data_spec(self):
        """What to read and how to split it (`edgecut.model.data.DataSpec`). `cls` has no template and no demos."""
        from edgecut.model.data import DataSpec

        recipe = self.training_recipe()
        return DataSpec(
            source=self.data,
            text_column=self.text_column,
            label_column=self.label_column,
            labels=self.labels,
            label_words=self.label_words,
            template=PLAIN_TEMPLATE if self.setting == "cls" else self.template,
            seed=self.seed,
            test_size=self.test_size,
            per_class_cap=recipe.per_class_cap,
            demonstrations=recipe.demonstrations and self.setting != "cls",
        )

    def protected_paths(self) -> list[Path]:
        """Inputs that `--force` must never replace: model, data, teacher and corpora, when they are paths."""
        given = (self.model, self.data, self.teacher, self.unlabeled, self.vocab_corpus)
        return [Path(p).expanduser() for p in given if p is not None and Path(p).expanduser().exists()]

    def as_dict(self) -> dict[str, Any]:
        """The settings as the manifest records them (and `--like` and `--config` read them back)."""
        return {
            k: str(v) if isinstance(v, Path) else (list(v) if isinstance(v, tuple) else v)
            for k, v in asdict(self).items()
        }


@dataclass(frozen=True)
class CheckSettings:
    """What to check beyond integrity and parity. Validated here, before any work.

    Margins: the baseline comparison fails when accuracy is lower than the baseline's by more than
    `accuracy_margin` points, or a latency higher by more than `latency_margin` percent.
    """

    target: str | None = option(None, "Target name or .toml path; default: the one recorded in the artifact.")
    data: str | Path | None = option(
        None, "Labelled CSV/TSV/JSONL file, or a built-in set, to measure accuracy on.", names=("-d",), cli_type=str
    )
    text_column: str = option("text", "Text column of the data file.")
    label_column: str = option("label", "Label column of the data file.")
    min_accuracy: float | None = option(None, "Gate: accuracy on --data at least this (fraction, e.g. 0.85).")
    max_latency_ms: float | None = option(None, "Gate: p50 latency at batch 1, in ms.")
    max_p90_ms: float | None = option(None, "Gate: p90 latency at batch 1, in ms.")
    baseline: Path | None = option(None, "Previous artifact: no metric may be worse by more than the margins.")
    accuracy_margin: float = option(1.0, "Baseline: accuracy may drop at most this many percentage points.")
    latency_margin: float = option(20.0, "Baseline: latency may grow at most this many percent.")
    latency_runs: int = option(100, "Timed runs for the latency measurement.")
    min_margin_over_baseline: float | None = option(
        None, "Gate: accuracy at least this many points (-100..100) above the tuned TF-IDF floor recorded at export."
    )

    def __post_init__(self) -> None:
        numbers = ("min_accuracy", "max_latency_ms", "max_p90_ms", "accuracy_margin", "latency_margin")
        for name in (*numbers, "min_margin_over_baseline"):  # nan passes every comparison below: refuse it first
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise EdgecutError(f"--{name.replace('_', '-')} {value}: give a finite number")
        margin = self.min_margin_over_baseline
        if margin is not None and not -100.0 <= margin <= 100.0:
            raise EdgecutError(
                f"--min-margin-over-baseline {margin:g} is in percentage points: give -100..100 "
                "(outside it the gate could never pass, or never fail)"
            )
        if self.min_accuracy is not None and not 0.0 <= self.min_accuracy <= 1.0:
            raise EdgecutError(f"--min-accuracy {self.min_accuracy:g} is a fraction: give 0..1, e.g. 0.85")
        if self.min_accuracy is not None and self.data is None:
            raise EdgecutError("--min-accuracy needs --data FILE, a labelled CSV/JSONL to measure accuracy on")
        for flag, value in (("--max-latency-ms", self.max_latency_ms), ("--max-p90-ms", self.max_p90_ms)):
            if value is not None and value <= 0:
                raise EdgecutError(f"{flag} {value:g} must be above 0 (milliseconds)")
        for flag, value in (("--accuracy-margin", self.accuracy_margin), ("--latency-margin", self.latency_margin)):
            if value < 0:
                raise EdgecutError(f"{flag} {value:g} must be 0 or more")
        if self.latency_runs < 1:
            raise EdgecutError(f"--latency-runs {self.latency_runs} must be at least 1")


def settings_fields() -> dict[str, Any]:
    """name -> dataclasses.Field of every export option, in declaration order."""
    return {f.name: f for f in fields(ExportSettings)}


def load_settings(given: Mapping[str, Any], config: Path | None = None, like: Path | None = None) -> ExportSettings:
    """ExportSettings from, lowest first: the defaults, `like`'s recorded settings, the `config` TOML file,
    `given` (the options typed on the command line, already parsed to field values).

    Raises:
        EdgecutError: an unknown key or a value of the wrong type in the file or the manifest (naming it),
            an unreadable file, an artifact of another manifest version; and every ExportSettings error.
    """
    values: dict[str, Any] = {}
    if like is not None:
        values |= settings_of_artifact(like)
    if config is not None:
        values |= settings_of_file(config)
    return ExportSettings(**(values | dict(given)))


def settings_of_file(path: Path) -> dict[str, Any]:
    """A TOML run config's settings, each key an ExportSettings field name and each value of its type."""
    path = Path(path)
    try:
        record = tomllib.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise EdgecutError(f"--config {path} does not exist: give a TOML file of export settings") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise EdgecutError(f"--config {path} is not a readable TOML file ({e}): fix it") from None
    return checked_settings(record, f"--config {path}")


def settings_of_artifact(directory: Path) -> dict[str, Any]:
    """The settings an artifact's manifest recorded, less where it was written (`NOT_REPEATED`)."""
    from edgecut.artifacts.manifest import read_manifest
    from edgecut.errors import ArtifactError

    try:
        manifest = read_manifest(directory)
    except ArtifactError as e:
        raise EdgecutError(f"--like {directory}: {e}") from None
    recorded = manifest.get("settings")
    if not isinstance(recorded, dict):
        raise EdgecutError(f"--like {directory}: its manifest records no settings: re-export it, or use --config")
    kept = {k: v for k, v in recorded.items() if k not in NOT_REPEATED}
    return checked_settings(kept, f"--like {directory} (settings recorded by another edgecut version?)")


def checked_settings(record: Mapping[str, Any], where: str) -> dict[str, Any]:
    """`record` with each value checked against its field's type (and lists made tuples, text made paths).

    Raises:
        EdgecutError: a key that is no export option, or a value of another type; naming the key.
    """
    known, hints = settings_fields(), typing.get_type_hints(ExportSettings)
    out = {}
    for key, value in record.items():
        if key not in known:
            close = difflib.get_close_matches(str(key).replace("-", "_"), list(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else f"; the keys are the field names: {', '.join(known)}"
            raise EdgecutError(f"{where}: unknown key {key!r}{hint}")
        ok, converted = _typed(hints[key], value)
        if not ok:
            raise EdgecutError(f"{where}: {key} = {value!r} is not {_type_name(hints[key])}: fix that value")
        out[key] = converted
    return out


def _typed(tp: Any, value: Any) -> tuple[bool, Any]:
    """(whether `value` is of type `tp`, the value as the field keeps it)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        for arm in typing.get_args(tp):
            ok, converted = _typed(arm, value)
            if ok:
                return True, converted
        return False, value
    if tp is type(None):
        return value is None, None
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return number, float(value) if number else value
    if tp is str:
        return isinstance(value, str), value
    if tp is Path:
        return isinstance(value, str), Path(value) if isinstance(value, str) else value
    if typing.get_origin(tp) is tuple:  # tuple[str, ...], tuple[float, ...]: a TOML list of that type
        if not isinstance(value, list | tuple):
            return False, value
        checked = [_typed(typing.get_args(tp)[0], item) for item in value]
        return all(ok for ok, _ in checked), tuple(item for _, item in checked)
    return False, value


def _type_name(tp: Any) -> str:
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "text", Path: "a path (text)"}
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        arms = [a for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(_type_name(a) for a in arms)
    if typing.get_origin(tp) is tuple:
        return {float: "a list of numbers"}.get(typing.get_args(tp)[0], "a list of text")
    return names.get(tp, str(tp))
