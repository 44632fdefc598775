"""The export recipe: `export(ExportSettings(...))` runs every stage in order and returns what it made.

    from edgecut import ExportSettings, export
    result = export(ExportSettings(layers=1, target="cpu-int8", output=Path("out")))

load → select → prune → classifier → fine-tune → export → optimise → precision → validate → artifact

Each stage is a module with a small public surface; this file only decides the order and what flows
between them, like a torchtune recipe. Settings are validated where they come in (`__post_init__`),
and what needs the environment (the target's provider, the destination) is checked before any model
loads, so bad input fails in a second. Under `accelerate launch`, every process trains; only the main
process exports, validates and writes the artifact.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from edgecut.errors import EdgecutError
from edgecut.progress import Progress
from edgecut.settings import ExportSettings

__all__ = ["ExportResult", "ExportSettings", "Progress", "export"]


@dataclass(frozen=True)
class ExportResult:
    """What an export made: the artifact and the numbers of its summary table."""

    path: Path
    layers: int
    depth: int
    params_before: int
    params_after: int
    precision: str
    test_rows: int
    torch_accuracy: float
    onnx_accuracy: float
    onnx_fp32_accuracy: float | None
    baseline_accuracy: float | None  # the tuned TF-IDF floor on the same test rows; None with --baseline none
    latency: list[dict[str, Any]]
    providers: list[str]
    model_bytes: int
    manifest: dict[str, Any] = field(repr=False, default_factory=dict)
    baseline_detail: str | None = None  # which grid point the floor used


def export(settings: ExportSettings, progress: Progress | None = None) -> ExportResult | None:
    """Cut, fine-tune, export, validate and write the artifact at `settings.output`.

    Returns None on the non-main processes of a multi-process launch (they only train).

    Raises:
        EdgecutError: bad input (model, data, target, destination), before any expensive work where it can.
        ParityError: the ONNX graph does not reproduce the torch model (QualityError: no int8/fp16 graph
            within the target's accuracy budget).
    """
    from edgecut.artifacts import artifact as art
    from edgecut.artifacts.manifest import TRAINING_LOG, write_golden, write_manifest
    from edgecut.graph.exporter import torch_logits
    from edgecut.graph.parity import POLICY
    from edgecut.graph.text_graph import check_tokenizer
    from edgecut.graph.validate import validate
    from edgecut.model.data import encode_examples
    from edgecut.model.finetune import finetune, train_with_rate_search
    from edgecut.model.load import load_model
    from edgecut.model.prompt import PromptFormat
    from edgecut.runtime import pad_batch

    s, progress = settings, progress or Progress()
    # Everything that can be checked without the model is checked first: bad input fails in a second.
    target, precision = _target_and_destination(s)
    inputs = _read_inputs(s, progress)  # data, template and label words before the model's config
    plan = _plan(s, target, precision)
    dataset = inputs.dataset
    with _workspace(s) as (workdir, is_main):
        with progress.stage(f"load {s.model}"):
            loaded = load_model(s.model, trust_remote_code=s.trust_remote_code)
        tok = loaded.tokenizer
        if is_main:
            art.save_tokenizer(tok, workdir)
            if s.with_tokenizer:  # a tokenizer the string graph cannot reproduce fails before training
                check_tokenizer(workdir / "tokenizer.json")
        prompt = PromptFormat(dataset.template, tuple(dataset.demonstrations), plan.recipe.max_length)
        train, _ = encode_examples(tok, prompt, dataset.train)
        val, _ = encode_examples(tok, prompt, dataset.validation)
        test, test_cut = encode_examples(tok, prompt, dataset.test)
        model = _cut_and_head(s, loaded, dataset, plan.layers, train, progress)
        # Trimmed before fine-tuning, so the optimizer carries only the kept rows.
        vocabulary = _trim_vocabulary(s, model.classifier, tok, prompt, (train, val, test), inputs, progress)
        distillation = _distillation(s, tok, prompt, dataset, inputs, len(train), progress)
        r = plan.recipe
        extra = f" + {len(inputs.unlabeled)} teacher-labelled" if distillation and inputs.unlabeled else ""
        rate = "lr auto" if s.lr == "auto" else f"lr {r.learning_rate:g}"
        progress.note(
            f"fine-tuning ({r.name} recipe: {len(train)} rows{extra}, {r.epochs:g} epoch(s), batch {r.batch_size}, "
            f"{rate})"
        )

        def train_one(classifier, recipe, name: str):
            return finetune(
                classifier,
                tok,
                train,
                val,
                recipe,
                workdir=art.scratch_dir(workdir) / name,
                on_progress=progress.training,
                log_path=art.scratch_dir(workdir) / name / TRAINING_LOG if is_main else None,
                distillation=distillation,
            )

        tuned, recipe, search = train_with_rate_search(
            plan.recipe, s.lr == "auto", model.classifier, train_one, progress
        )
        plan = replace(plan, recipe=recipe)
        if is_main:  # the kept run's log is the artifact's
            shutil.copyfile(art.scratch_dir(workdir) / search.pop("run") / TRAINING_LOG, workdir / TRAINING_LOG)
        _report_training(tuned, progress)
        if not is_main:  # the other processes of a multi-process launch only train
            return None

        classifier, pad = tuned.model, tok.pad_token_id
        test_ids, test_labels = [f["input_ids"] for f in test], [f["labels"] for f in test]
        with progress.counter("torch accuracy", len(test_ids)) as advance:
            reference = torch_logits(classifier, test_ids, pad, on_batch=advance)
        graph = _build_graph(classifier, plan, pad, test_ids, reference, train, val, workdir, progress)
        with progress.counter("ONNX Runtime accuracy", len(test_ids) * (2 if graph.choice else 1)) as advance:
            report = validate(
                reference,
                graph.session,
                test_ids,
                test_labels,
                pad,
                fp32_session=graph.fp32_session,
                io_binding=plan.target.io_binding,
                on_batch=advance,
            )
        baseline = _floor(s, dataset, progress)

        golden_feed = pad_batch(test_ids[: POLICY.golden_rows], pad)
        write_golden(workdir, golden_feed, graph.session.run(["logits"], golden_feed)[0])
        classifier.config.save_pretrained(workdir)
        record = _manifest_record(
            s, plan, loaded, model, dataset, prompt, test_cut, vocabulary, inputs, tuned, graph, report, baseline
        )
        record["training"]["learning_rate"] = search  # the rule that chose it (and --lr auto's grid)
        shutil.rmtree(art.scratch_dir(workdir))  # intermediate graphs and checkpoints are not the artifact
        write_manifest(workdir, record, exclude=(art.STAGING,))
        if s.with_tokenizer:
            with progress.stage("raw-text graph (prompt and tokenizer inside)"):
                texts = [ex.text for ex in dataset.test]
                record["text_model"] = _text_graph(workdir, texts, plan.target, graph.parity_reference)
            if record["text_model"]["known_divergences"]:
                progress.warn(f"model_text.onnx: {record['text_model']['known_divergences']}")
            write_manifest(workdir, record, exclude=(art.STAGING,))
        size = graph.size(workdir)
    return ExportResult(
        path=s.output.resolve(),
        layers=plan.layers,
        depth=model.pruned.depth_before,
        params_before=model.pruned.params_before,
        params_after=record["parameters"]["after"],
        precision=plan.precision,
        test_rows=report.rows,
        torch_accuracy=report.torch_accuracy,
        onnx_accuracy=report.onnx_accuracy,
        onnx_fp32_accuracy=report.onnx_fp32_accuracy,
        baseline_accuracy=baseline.accuracy if baseline else None,
        baseline_detail=_floor_choice(baseline) if baseline else None,
        latency=[asdict(x) for x in report.latency],
        providers=report.providers,
        model_bytes=size,
        manifest=record,
    )


# --- the stages' glue: what flows between the modules, one step each -----------------------------------


@dataclass(frozen=True)
class _Plan:
    target: Any  # edgecut.targets.Target
    precision: str
    recipe: Any  # edgecut.model.finetune.Recipe
    layers: int


def _target_and_destination(s: ExportSettings) -> tuple[Any, str]:
    """The target and its precision, its provider and the destination checked: no file is read yet."""
    from edgecut.artifacts import artifact as art
    from edgecut.runtime import check_target_available
    from edgecut.targets import load_target

    target = load_target(s.target)
    precision = target.resolve_precision(s.quantize)
    check_target_available(target)
    art.check_destination(s.output, s.force, s.protected_paths())
    return target, precision


def _plan(s: ExportSettings, target, precision: str) -> _Plan:
    """Recipe and N from the model's config alone (transformers is imported here): no weights are read yet."""
    from edgecut.model.load import read_config

    config = read_config(s.model, s.trust_remote_code)  # depth and family from the config alone
    depth = int(config.num_hidden_layers)
    layers = depth if s.layers == "full" else s.layers
    if layers > depth:
        raise EdgecutError(f"--layers {layers} is out of range: this model has {depth} layers, use 1..{depth}")
    recipe = s.training_recipe(config)
    positions = getattr(config, "max_position_embeddings", None)  # a prompt longer than this cannot be read
    if isinstance(positions, int) and recipe.max_length > positions:
        raise EdgecutError(
            f"--max-length {recipe.max_length} is longer than this model can read ({positions} positions): "
            f"use --max-length {positions} or less"
        )
    return _Plan(target, precision, recipe, layers)


@dataclass(frozen=True)
class _Inputs:
    dataset: Any  # edgecut.model.data.Dataset
    unlabeled: list[str]
    corpus: list[str]
    teacher: Any  # edgecut.model.distill.Teacher, opened and verified once, or None


def _read_inputs(s: ExportSettings, progress: Progress) -> _Inputs:
    """The data, the teacher's extra texts and the vocabulary corpus; a teacher with other labels fails here."""
    from edgecut.model.data import load_dataset, shorten_list
    from edgecut.model.distill import Teacher, read_unlabeled
    from edgecut.model.vocab import read_corpus

    with progress.stage("data"):
        dataset = load_dataset(s.data_spec())
        unlabeled = read_unlabeled(s.unlabeled) if s.unlabeled else []
        corpus = read_corpus(s.vocab_corpus) if s.vocab_corpus else []
    teacher = None
    if s.teacher is not None:  # before any model loads: a wrong or damaged teacher fails in a second
        with progress.stage(f"teacher {s.teacher}"):
            teacher = Teacher(s.teacher, dataset.labels)
    progress.note(
        f"{dataset.name}: {len(dataset.train)} train / {len(dataset.validation)} validation / "
        f"{len(dataset.test)} test, {len(dataset.labels)} classes: {shorten_list(dataset.labels)}"
    )
    return _Inputs(dataset, unlabeled, corpus, teacher)


def _cut_and_head(s: ExportSettings, loaded, dataset, layers: int, train: list[dict], progress: Progress):
    """Choose and keep N layers, then put the classification head on (`edgecut.model.cut.cut_model`)."""
    from edgecut.graph.parity import POLICY
    from edgecut.model.cut import cut_model

    with progress.stage(f"choose {layers} layer(s) ({s.select})"):
        calibration = [f["input_ids"] for f in train[: POLICY.calibration_rows]]
        model = cut_model(
            loaded,
            layers,
            dataset.labels,
            dataset.label_words,
            select=s.select,
            setting=s.setting,
            pooling=s.pooling,
            calibration=calibration,
        )
    pruned = model.pruned
    progress.note(
        f"kept layers {list(model.selection.kept)}; parameters {pruned.params_before / 1e6:.1f} M → "
        f"{pruned.params_after / 1e6:.1f} M ({pruned.depth_before} → {layers} layers)"
    )
    return model


def _trim_vocabulary(s, classifier, tok, prompt, splits, inputs: _Inputs, progress) -> dict[str, Any]:
    """`--vocab task|auto|N`: the embedding cut to the ids the task uses (in place); the manifest's record.

    `auto` keeps the whole table when the task's ids cover less than AUTO_MIN_COVERAGE of the validation
    prompts' tokens, and says so.
    """
    from edgecut.model.vocab import (
        AUTO_MIN_COVERAGE,
        always_kept_ids,
        corpus_sequences,
        coverage,
        parse_vocab,
        task_token_ids,
        trim_vocabulary,
    )

    vocab = parse_vocab(s.vocab)
    if not vocab.trims:
        return {"vocab": "all"}
    train, val, test = ([f["input_ids"] for f in split] for split in splits)
    with progress.stage(f"vocabulary ({vocab})"):
        # the unlabeled texts a teacher labels are training prompts too: their ids must keep their rows
        seen = train + corpus_sequences(tok, prompt, [*inputs.unlabeled, *inputs.corpus])
        keep = task_token_ids(seen, vocab, always_kept_ids(tok, prompt, inputs.dataset.label_words))
        val_covered = coverage(val, keep)
        if vocab.mode == "auto" and val_covered < AUTO_MIN_COVERAGE:
            progress.note(
                f"vocabulary: all {classifier.get_input_embeddings().weight.shape[0]} token ids kept: the training "
                f"data's ids cover {val_covered:.1%} of the validation tokens, under auto's {AUTO_MIN_COVERAGE:.0%}"
            )
            return {"vocab": "all", "requested": "auto", "validation_coverage": val_covered}
        trimmed = trim_vocabulary(classifier, keep, "nearest")
        covered = coverage(test, keep)
    if vocab.mode == "top" and vocab.size > len(keep):  # never silently fewer rows than asked for
        progress.note(
            f"--vocab {vocab.size}: the training data uses only {len(keep)} of the model's {trimmed.vocab_size} "
            f"token ids, so {len(keep)} are kept (as --vocab task keeps); unseen words map to their nearest kept id"
        )
    progress.note(
        f"kept {trimmed.kept} of {trimmed.vocab_size} token ids ({covered:.1%} of the test tokens); "
        f"parameters {trimmed.params_before / 1e6:.1f} M → {trimmed.params_after / 1e6:.1f} M"
    )
    return trimmed.as_dict(vocab, covered, val_covered)


def _distillation(s, tok, prompt, dataset, inputs: _Inputs, rows: int, progress):
    """`--teacher`: its logits on the training texts (and the unlabeled ones) as soft targets, or None."""
    from edgecut.model.data import Example, encode_examples
    from edgecut.model.finetune import Distillation

    if inputs.teacher is None:
        return None
    with progress.counter(f"teacher {s.teacher}", rows + len(inputs.unlabeled)) as advance:
        soft = inputs.teacher.logits([ex.text for ex in dataset.train], on_batch=advance)
        extra, _ = encode_examples(tok, prompt, [Example(t, 0) for t in inputs.unlabeled])
        extra = [{k: v for k, v in f.items() if k != "labels"} for f in extra]
        extra_soft = inputs.teacher.logits(inputs.unlabeled, on_batch=advance) if extra else None
    return Distillation(soft, s.distill_alpha, s.distill_temperature, extra, extra_soft)


def _floor(s: ExportSettings, dataset, progress: Progress):
    """`--baseline tfidf`: the tuned TF-IDF floor on the same rows, bounded by --time-budget (or
    baselines.TFIDF_DEFAULT_SECONDS) and shown point by point; None with `--baseline none`."""
    from edgecut.sweeps.baselines import TFIDF_DEFAULT_SECONDS, grid_size, tfidf_baseline

    if s.baseline == "none":
        return None
    limit = s.time_budget if s.time_budget is not None else TFIDF_DEFAULT_SECONDS
    title = f"TF-IDF floor: features x C on {len(dataset.validation)} validation rows (at most {limit:g} s)"
    with progress.counter(title, grid_size()) as advance:
        baseline = tfidf_baseline(dataset, s.seed, seconds=limit, on_point=lambda _: advance(1))
    progress.note(f"floor: TF-IDF {_floor_choice(baseline)}: {baseline.accuracy:.1%} on the test rows")
    if baseline.note:
        progress.warn(f"TF-IDF floor: {baseline.note}; the best point so far is the floor")
    return baseline


def _floor_choice(baseline) -> str:
    chosen = baseline.tuned["chosen"]
    return f"{chosen['features']}, C={chosen['C']:g} (validation {chosen['validation_accuracy']:.1%})"


def _report_training(tuned, progress: Progress) -> None:
    progress.trained(tuned.model)
    if not tuned.learned:
        progress.warn(
            f"the model did not learn: its best validation accuracy ({tuned.best_validation_accuracy:.1%}) "
            f"is no better than always predicting the most common class ({tuned.majority_rate:.1%}); "
            "try another --lr, more --epochs or more layers"
        )
    progress.note(
        f"{tuned.seconds:.0f}s, {tuned.steps} steps, stopped by {tuned.stopped_by}, "
        f"best validation accuracy {tuned.best_validation_accuracy:.1%}"
    )


@dataclass(frozen=True)
class _Graph:
    exported: Any  # edgecut.graph.exporter.ExportedGraph
    parity: Any  # ParityResult of the fp32 export against torch
    optimized: Any  # edgecut.graph.optimize.OptimizeResult
    choice: Any  # edgecut.graph.precision.PrecisionChoice, or None for fp32
    shipped: Any  # ParityResult of the shipped graph against torch
    session: Any  # on the target's providers
    fp32_session: Any  # the fp32 graph on the target, beside an int8/fp16 one (None for fp32)
    parity_reference: Any
    external_data: bool  # the shipped graph keeps its weights in model.onnx.data (over 2 GB)

    def size(self, workdir: Path) -> int:
        from edgecut.graph.quantize import graph_bytes

        return graph_bytes(workdir / "model.onnx")


def _build_graph(classifier, plan: _Plan, pad: int, test_ids, reference, train, val, workdir: Path, progress):
    """Export, check against torch, optimise, build the target's precision, check the shipped graph."""
    from edgecut.artifacts import artifact as art
    from edgecut.graph.exporter import export_onnx, save_graph
    from edgecut.graph.optimize import optimize_graph
    from edgecut.graph.parity import POLICY, compare_logits, require_parity
    from edgecut.graph.precision import choose_fp16, choose_int8
    from edgecut.runtime import create_session, pad_batch, run_logits
    from edgecut.targets import load_target

    target, precision = plan.target, plan.precision
    rows, expected = test_ids[: POLICY.rows], reference[: POLICY.rows]
    graphs = art.scratch_dir(workdir) / "graphs"
    graphs.mkdir(parents=True, exist_ok=True)
    with progress.stage("export to ONNX"):
        exported = export_onnx(classifier, pad_batch(test_ids[: POLICY.trace_rows], pad), graphs / "model.onnx")
        # The export itself is checked on the CPU in fp32, whatever the target.
        fp32_logits = run_logits(create_session(exported.path, load_target("cpu")), rows, pad)
        parity = require_parity(compare_logits(expected, fp32_logits, POLICY.tolerance(POLICY.export_atol, expected)))
    progress.note(f"parity: max |Δlogit| {parity.max_abs_diff:.1e} on {parity.rows} test prompts, argmax identical")
    with progress.stage(f"optimise the graph ({', '.join(target.optimizations) or 'no offline pass'})"):
        optimized = optimize_graph(exported.path, graphs, target, classifier.config, rows, pad, expected)
    if target.optimizations:
        progress.note(f"applied: {', '.join(optimized.applied) or 'none (no pass kept parity)'}")
    choice = None
    if precision != "fp32":  # the first candidate within the target's max_accuracy_drop on validation
        val_ids, val_labels = [f["input_ids"] for f in val], [f["labels"] for f in val]
        (graphs / precision).mkdir()
        with progress.stage(f"build {precision} graph (scored on {len(val_ids)} validation prompts)"):
            if precision == "int8":
                feeds = [pad_batch([f["input_ids"]], pad) for f in train[: target.int8.calibration_size]]
                choice = choose_int8(optimized.path, graphs / precision, target, feeds, val_ids, val_labels, pad)
            else:
                choice = choose_fp16(optimized.path, graphs / precision, target, val_ids, val_labels, pad)
        progress.note(choice.describe())
    save_graph(choice.path if choice else optimized.path, workdir / "model.onnx")
    session = create_session(workdir / "model.onnx", target)
    shipped = require_parity(
        compare_logits(
            expected,
            run_logits(session, rows, pad),
            None if precision == "int8" else POLICY.tolerance(target.parity_atol, expected),
            POLICY.shipped_min_agreement(target.min_argmax_agreement, target.precision, precision),
        ),
        what=f"the {precision} graph on {target.providers[0]}",
    )
    fp32_session = create_session(optimized.path, target) if choice else None
    external = (workdir / "model.onnx.data").exists()
    return _Graph(exported, parity, optimized, choice, shipped, session, fp32_session, expected, external)


def _manifest_record(
    s,
    plan,
    loaded,
    model,
    dataset,
    prompt,
    test_cut,
    vocabulary,
    inputs,
    tuned,
    graph: _Graph,
    report,
    baseline,
) -> dict[str, Any]:
    """Everything `edgecut.json` records (manifest.write_manifest adds versions and file hashes)."""
    from edgecut.artifacts.manifest import TRAINING_LOG
    from edgecut.graph.parity import POLICY
    from edgecut.model.classifier import label_token_ids
    from edgecut.model.prune import count_parameters
    from edgecut.sweeps.baselines import TFIDF_DESCRIPTION

    target, precision, classifier, tok = plan.target, plan.precision, tuned.model, loaded.tokenizer
    quant = graph.choice.quantize if graph.choice else None
    return {
        "model_file": "model.onnx",
        "source_model": {"source": loaded.source, "resolved": loaded.resolved, "sha256": loaded.sha256},
        "architecture": classifier.config.architectures[0],
        "layers": {
            "kept": list(model.pruned.kept_layers),
            "total": model.pruned.depth_before,
            "select": model.selection.method,
            "scores": list(model.selection.scores),
        },
        # what the artifact holds: after the cut and after --vocab trimming (vocabulary.parameters has both)
        "parameters": {"before": model.pruned.params_before, "after": count_parameters(classifier)},
        "labels": dataset.labels,
        "label_words": dataset.label_words,
        "label_token_ids": label_token_ids(tok, dataset.label_words) if model.init == "lm" else None,
        "head_init": model.init,
        "pooling": model.pooling,
        "setting": s.setting,
        "prompt": prompt.as_dict(),
        "pad_token_id": tok.pad_token_id,
        "precision": precision,
        "quantization": quant.as_dict() if quant else None,
        "precision_search": graph.choice.as_dict() if graph.choice else None,
        "optimizations": {
            "applied": graph.optimized.applied,
            "passes": graph.optimized.passes,
            "decided_by": f"the target's list (targets/{target.name}.toml; benchmarks/optimizations.py)",
        },
        "target": target.as_dict(),
        "providers_used": report.providers,
        "signature": {
            "inputs": {"input_ids": ["batch", "sequence"], "attention_mask": ["batch", "sequence"]},
            "outputs": {"logits": ["batch", len(dataset.labels)]},
            "dtype": "int64",
        },
        "opset": graph.exported.opset,
        "exporter": graph.exported.exporter,
        "external_data": graph.external_data,
        "settings": s.as_dict(),
        "recipe": asdict(plan.recipe),
        "data": dataset.summary() | {"test_queries_truncated": test_cut},
        "training": {
            "seconds": round(tuned.seconds, 1),
            "steps": tuned.steps,
            "stopped_by": tuned.stopped_by,
            "validation_accuracy": tuned.validation_accuracy,
            "learned": tuned.learned,
            "majority_rate": tuned.majority_rate,
            "log": TRAINING_LOG,
        },
        "metrics": report.as_dict()
        | {
            "parity_max_abs_diff": graph.parity.max_abs_diff,
            "shipped_max_abs_diff": graph.shipped.max_abs_diff,
            "shipped_argmax_agreement": graph.shipped.argmax_agreement,
        },
        "baseline": baseline.as_manifest(TFIDF_DESCRIPTION) if baseline else None,
        "golden": {"file": "golden.npz", "atol": POLICY.golden_atol(target.parity_atol, precision)},
        "vocabulary": vocabulary,
        "distillation": None
        if s.teacher is None
        else {
            "teacher": inputs.teacher.record(),
            "alpha": s.distill_alpha,
            "temperature": s.distill_temperature,
            "unlabeled_rows": len(inputs.unlabeled),
        },
    }


def _text_graph(workdir: Path, texts: list[str], target, reference) -> dict[str, Any]:
    """Write model_text.onnx beside the id graph and require it to match it: same ids, logits within tolerance."""
    from importlib import metadata

    from edgecut.errors import ParityError
    from edgecut.graph.parity import POLICY
    from edgecut.graph.text_graph import TEXT_MODEL, build_text_graph, compare_text_graph

    built = build_text_graph(workdir, workdir / TEXT_MODEL)
    parity = compare_text_graph(workdir, built.path, texts[: POLICY.rows])
    atol = POLICY.tolerance(target.parity_atol, reference)
    if parity.ids_equal != parity.texts or parity.max_abs_logit_diff > atol:
        raise ParityError(
            f"{TEXT_MODEL} does not match the id graph: ids equal on {parity.ids_equal} of {parity.texts} test "
            f"texts, max |Δlogit| {parity.max_abs_logit_diff:.2e} (allowed {atol:.1e})"
        )
    return {
        "file": TEXT_MODEL,
        "tokenizer": built.tokenizer,
        "known_divergences": built.known_divergences,
        "divergent_characters": list(built.divergent_characters),
        "external_data": built.external_data,
        "inputs": {"text": ["batch"]},
        "outputs": ["logits", "label", "truncated"],
        "parity": {"texts": parity.texts, "ids_equal": parity.ids_equal, "max_abs_diff": parity.max_abs_logit_diff},
        "onnxruntime_extensions": metadata.version("onnxruntime-extensions"),
    }


@contextlib.contextmanager
def _workspace(s: ExportSettings) -> Iterator[tuple[Path, bool]]:
    """(directory, is_main): the staging directory that becomes the artifact, and whether this process
    writes it. Under a multi-process launch the other processes get the same path, because Trainer's
    checkpoints (inside it) are shared; only the main process creates, fills and renames it.
    """
    from edgecut.artifacts.artifact import staging

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        with staging(s.output, s.force, s.protected_paths()) as tmp:
            yield tmp, True
        return
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    state = PartialState()
    if state.is_main_process:
        with staging(s.output, s.force, s.protected_paths()) as tmp:
            broadcast_object_list([str(tmp)])
            yield tmp, True
    else:
        shared: list[Any] = [None]
        broadcast_object_list(shared)
        yield Path(shared[0]), False
