"""The `edgecut` command. Thin on purpose: parse options, call the stages in order, print.

load → prune → data → classifier → finetune → export → quantize → validate → artifact
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from edgecut.errors import EdgecutError, ParityError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Cut an LLM to its first N layers, fine-tune it as a classifier, ship it as ONNX.",
)
console = Console(stderr=True)
SETTINGS = ("lm", "pcls", "cls")  # the paper's three fine-tuning settings
PLAIN_TEMPLATE = "{text}{label}"  # cls: the text alone, no template words
CALIBRATION_PROMPTS = 64  # training prompts that score layers for --select block-influence / angular
out = Console()


def _fail(message: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def _exit_codes(interrupted: str):
    """User mistakes exit 2, an export that does not match torch exits 1, Ctrl-C 130: one line each."""
    try:
        yield
    except EdgecutError as e:
        _fail(str(e))
    except ParityError as e:
        _fail(str(e), code=1)
    except KeyboardInterrupt:
        _fail(interrupted, code=130)


@contextmanager
def _step(title: str):
    start = time.monotonic()
    with console.status(f"{title}…"):
        yield
    console.print(f"[green]✓[/] {title} [dim]({time.monotonic() - start:.1f}s)[/]")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(v for v in (value or "").split(",") if v.strip()) if value else ()


@app.command()
def export(
    model: Annotated[
        str, typer.Option("--model", "-m", help="Local dir, .gguf file, hub id, or alias.")
    ] = "smollm2-135m",
    data: Annotated[
        str, typer.Option("--data", "-d", help="CSV/JSONL file or built-in set (rotten-tomatoes, bbc-news).")
    ] = "rotten-tomatoes",
    layers: Annotated[
        str, typer.Option("--layers", "-n", help="Keep N transformer layers (a number, or 'full' for all).")
    ] = "1",
    select: Annotated[
        str, typer.Option(help="Which N layers: first (the paper), block-influence (ShortGPT) or angular (Gromov).")
    ] = "first",
    target: Annotated[str, typer.Option(help="Target name (see `edgecut targets`) or path to a .toml file.")] = "cpu",
    output: Annotated[Path, typer.Option("--output", "-o", help="Artifact directory to create.")] = Path("edgecut-out"),
    force: Annotated[bool, typer.Option(help="Replace an existing output directory.")] = False,
    labels: Annotated[str | None, typer.Option(help="Comma-separated class names, in class order.")] = None,
    label_words: Annotated[
        str | None, typer.Option(help="Comma-separated label words, one per class (a leading space is added).")
    ] = None,
    template: Annotated[
        str | None,
        typer.Option(
            help=r'Prompt template with {text} and a final {label}, e.g. "Review: {text}\nSentiment:{label}".'
        ),
    ] = None,
    text_column: Annotated[str, typer.Option(help="Text column of the data file.")] = "text",
    label_column: Annotated[str, typer.Option(help="Label column of the data file.")] = "label",
    setting: Annotated[
        str,
        typer.Option(
            help="The paper's settings: lm (prompt + label-word head, default), pcls (prompt + random head), "
            "cls (plain text + random head)."
        ),
    ] = "lm",
    recipe: Annotated[
        str, typer.Option(help="Training preset: cpu (fast, default) or paper (the paper's recipe).")
    ] = "cpu",
    epochs: Annotated[float | None, typer.Option(help="Override the recipe's epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Override the recipe's batch size.")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Override the recipe's learning rate.")] = None,
    per_class_cap: Annotated[int | None, typer.Option(help="Override the recipe's training rows per class.")] = None,
    max_length: Annotated[int | None, typer.Option(help="Override the recipe's prompt length in tokens.")] = None,
    demos: Annotated[
        bool | None, typer.Option("--demos/--no-demos", help="One demonstration per class in each prompt.")
    ] = None,
    time_budget: Annotated[float | None, typer.Option(help="Stop training after this many seconds.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for splits and training.")] = 0,
    test_size: Annotated[int, typer.Option(help="Test rows (at most a fifth of the data).")] = 1000,
    quantize: Annotated[
        str, typer.Option(help="none (the target's precision), int8 or fp16, where the target allows it.")
    ] = "none",
    trust_remote_code: Annotated[bool, typer.Option(help="Allow model code from the hub (off by default).")] = False,
) -> None:
    """Cut, fine-tune, export, validate: write a self-describing ONNX artifact."""
    with _exit_codes(interrupted="interrupted: nothing was written"):
        _export(**locals())


def _export(
    model,
    data,
    layers,
    select,
    target,
    output,
    force,
    labels,
    label_words,
    template,
    text_column,
    label_column,
    setting,
    recipe,
    epochs,
    batch_size,
    lr,
    per_class_cap,
    max_length,
    demos,
    time_budget,
    seed,
    test_size,
    quantize,
    trust_remote_code,
) -> None:
    import tempfile

    from edgecut import artifact as art
    from edgecut.data import DataSpec, encode_examples, load_dataset
    from edgecut.finetune import get_recipe
    from edgecut.prompt import PromptFormat
    from edgecut.runtime import check_target_available, create_session, pad_batch, run_logits
    from edgecut.targets import load_target

    # Everything that can be checked without the model is checked first: bad input fails in a second.
    if layers != "full" and (not layers.isdigit() or int(layers) < 1):
        raise EdgecutError(f"--layers {layers} is out of range: keep at least 1 layer, or 'full'")
    from edgecut.select import METHODS

    if select not in METHODS:
        raise EdgecutError(f"--select {select}: use one of {', '.join(METHODS)}")
    if setting not in SETTINGS:
        raise EdgecutError(f"--setting {setting}: use one of {', '.join(SETTINGS)}")
    if setting == "cls" and template:
        raise EdgecutError("--setting cls classifies the plain text: drop --template (or use --setting pcls)")
    tgt = load_target(target)
    precision = tgt.resolve_precision(quantize)
    check_target_available(tgt)
    art.check_destination(output.resolve(), force)
    rcp = get_recipe(
        recipe,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=lr,
        per_class_cap=per_class_cap,
        max_length=max_length,
        demonstrations=demos,
        time_budget_s=time_budget,
        seed=seed,
    )

    with _step("data"):
        dataset = load_dataset(
            DataSpec(
                source=data,
                text_column=text_column,
                label_column=label_column,
                labels=_split(labels),
                label_words=_split(label_words),
                template=PLAIN_TEMPLATE if setting == "cls" else template,
                seed=seed,
                test_size=test_size,
                per_class_cap=rcp.per_class_cap,
                demonstrations=rcp.demonstrations and setting != "cls",
            )
        )
    console.print(
        f"  {dataset.name}: {len(dataset.train)} train / {len(dataset.validation)} validation / "
        f"{len(dataset.test)} test, classes {', '.join(dataset.labels)}"
    )

    from edgecut.classifier import label_token_ids, make_classifier
    from edgecut.export import EXPORT_ATOL, check_parity, export_onnx, scaled_tolerance, torch_logits
    from edgecut.finetune import finetune
    from edgecut.load import load_model
    from edgecut.optimize import OptimizeResult, optimize_graph
    from edgecut.prune import depth, keep_layers
    from edgecut.quantize import build_precision, cpu_has_vnni, graph_bytes
    from edgecut.select import select_layers
    from edgecut.validate import validate

    with _step(f"load {model}"):
        loaded = load_model(model, trust_remote_code=trust_remote_code)
    tok = loaded.tokenizer
    prompt = PromptFormat(dataset.template, tuple(dataset.demonstrations), rcp.max_length)
    train, _ = encode_examples(tok, prompt, dataset.train)
    val, _ = encode_examples(tok, prompt, dataset.validation)
    test, test_cut = encode_examples(tok, prompt, dataset.test)
    layers = depth(loaded.model) if layers == "full" else int(layers)
    with _step(f"choose {layers} layer(s) ({select})"):
        calibration = [f["input_ids"] for f in train[:CALIBRATION_PROMPTS]]
        selection = select_layers(loaded.model, layers, select, calibration, tok.pad_token_id)
        pruned = keep_layers(loaded.model, selection.kept)
    console.print(
        f"  kept layers {list(selection.kept)}; parameters {pruned.params_before / 1e6:.1f} M → "
        f"{pruned.params_after / 1e6:.1f} M ({pruned.depth_before} → {layers} layers)"
    )

    # Encoders have no LM head; pcls/cls are the paper's settings with a freshly initialised head.
    init = "lm" if setting == "lm" and not loaded.is_encoder else "random"
    classifier = make_classifier(loaded.model, tok, dataset.labels, dataset.label_words, init=init)
    test_ids, test_labels = [f["input_ids"] for f in test], [f["labels"] for f in test]

    console.print(
        f"fine-tuning ({rcp.name} recipe: {len(train)} rows, {rcp.epochs:g} epoch(s), "
        f"batch {rcp.batch_size}, lr {rcp.learning_rate:g})"
    )
    tuned = finetune(classifier, tok, train, val, rcp, show_progress=sys.stderr.isatty())
    classifier = tuned.model
    console.print(
        f"[green]✓[/] fine-tune [dim]({tuned.seconds:.0f}s, {tuned.steps} steps, stopped by "
        f"{tuned.stopped_by}, best validation accuracy {tuned.best_validation_accuracy:.1%})[/]"
    )

    with _progress() as bar:
        task = bar.add_task("torch accuracy", total=len(test_ids))
        reference = torch_logits(classifier, test_ids, tok.pad_token_id, on_batch=lambda n: bar.advance(task, n))

    with art.staging(output, force) as tmp, tempfile.TemporaryDirectory(prefix="edgecut-graphs-") as scratch:
        fp32_path = Path(scratch) / "model.onnx"
        parity_rows, pad = test_ids[:64], tok.pad_token_id
        parity_reference = reference[: len(parity_rows)]
        with _step("export to ONNX"):
            exported = export_onnx(classifier, pad_batch(test_ids[:2], pad), fp32_path)
            # The export itself is checked on the CPU in fp32, whatever the target: 1e-4 (scaled) and same argmax.
            parity = check_parity(
                parity_reference,
                run_logits(create_session(fp32_path, load_target("cpu")), parity_rows, pad),
                scaled_tolerance(EXPORT_ATOL, parity_reference),
            )
        console.print(
            f"  parity: max |Δlogit| {parity.max_abs_diff:.1e} on {parity.rows} test prompts, argmax identical"
        )
        if tgt.optimizations:
            with _step(f"optimise the graph ({', '.join(tgt.optimizations)})"):
                optimized = optimize_graph(
                    fp32_path, Path(scratch), tgt, classifier.config, parity_rows, pad, parity_reference
                )
            console.print(f"  kept: {', '.join(optimized.applied) or 'none (no pass was faster with parity)'}")
        else:
            optimized = OptimizeResult(fp32_path)
        with _step(f"build {precision} graph"):
            calibration = [pad_batch([f["input_ids"]], pad) for f in train[: tgt.int8.calibration_size]]
            quant = build_precision(optimized.path, tmp / "model.onnx", precision, tgt, calibration)
        if quant is not None and quant.precision == "int8":
            vnni = "this CPU has VNNI" if cpu_has_vnni() else "this CPU lacks VNNI"
            console.print(
                f"  int8 {quant.mode}, per-channel {'on' if quant.per_channel else 'off'}, reduce_range "
                f"{'on' if quant.reduce_range else 'off'} ({vnni}), {quant.calibration_size} calibration prompts"
            )
        session = create_session(tmp / "model.onnx", tgt)
        shipped = check_parity(
            parity_reference,
            run_logits(session, parity_rows, pad),
            None if precision == "int8" else scaled_tolerance(tgt.parity_atol, parity_reference),
            tgt.min_argmax_agreement,
            what=f"the {precision} graph on {tgt.providers[0]}",
        )

        with _progress() as bar:
            task = bar.add_task("ONNX Runtime accuracy", total=len(test_ids) * (2 if quant else 1))
            report = validate(
                reference,
                session,
                test_ids,
                test_labels,
                pad,
                fp32_session=create_session(optimized.path, tgt) if quant else None,
                io_binding=tgt.io_binding,
                on_batch=lambda n: bar.advance(task, n),
            )

        golden_feed = pad_batch(test_ids[:8], pad)
        art.write_golden(tmp, golden_feed, session.run(["logits"], golden_feed)[0])
        classifier.config.save_pretrained(tmp)
        art.save_tokenizer(tok, tmp)
        art.write_manifest(
            tmp,
            {
                "model_file": "model.onnx",
                "source_model": {"source": loaded.source, "resolved": loaded.resolved, "sha256": loaded.sha256},
                "architecture": classifier.config.architectures[0],
                "layers": {
                    "kept": list(pruned.kept_layers),
                    "total": pruned.depth_before,
                    "select": selection.method,
                    "scores": list(selection.scores),
                },
                "parameters": {"before": pruned.params_before, "after": pruned.params_after},
                "labels": dataset.labels,
                "label_words": dataset.label_words,
                "label_token_ids": label_token_ids(tok, dataset.label_words) if init == "lm" else None,
                "head_init": init,
                "setting": setting,
                "prompt": prompt.as_dict(),
                "pad_token_id": pad,
                "precision": precision,
                "quantization": quant.as_dict() if quant else None,
                "optimizations": {"applied": optimized.applied, "passes": optimized.passes},
                "target": tgt.as_dict(),
                "providers_used": report.providers,
                "signature": {
                    "inputs": {"input_ids": ["batch", "sequence"], "attention_mask": ["batch", "sequence"]},
                    "outputs": {"logits": ["batch", len(dataset.labels)]},
                    "dtype": "int64",
                },
                "opset": exported.opset,
                "exporter": exported.exporter,
                "external_data": (tmp / "model.onnx.data").exists(),
                "recipe": vars(rcp) | {},
                "data": dataset.summary() | {"test_queries_truncated": test_cut},
                "training": {
                    "seconds": round(tuned.seconds, 1),
                    "steps": tuned.steps,
                    "stopped_by": tuned.stopped_by,
                    "validation_accuracy": tuned.validation_accuracy,
                },
                "metrics": report.as_dict()
                | {
                    "parity_max_abs_diff": parity.max_abs_diff,
                    "shipped_max_abs_diff": shipped.max_abs_diff,
                    "shipped_argmax_agreement": shipped.argmax_agreement,
                },
                "golden": {
                    "file": art.GOLDEN,
                    "atol": tgt.parity_atol if precision == "fp32" else max(tgt.parity_atol, 1e-3),
                },
            },
        )
        size = graph_bytes(tmp / "model.onnx")

    _summary(layers, pruned, precision, report, size, output.resolve())


def _summary(layers, pruned, precision: str, report, size: int, where: Path) -> None:
    table = Table(title="edgecut export", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("layers kept", f"{layers} of {pruned.depth_before}")
    table.add_row("parameters", f"{pruned.params_before / 1e6:.1f} M → {pruned.params_after / 1e6:.1f} M")
    table.add_row("accuracy (torch)", f"{report.torch_accuracy:.1%} on {report.rows} test rows")
    if report.onnx_fp32_accuracy is not None:
        table.add_row("accuracy (ORT fp32)", f"{report.onnx_fp32_accuracy:.1%}")
        drop = (report.onnx_fp32_accuracy - report.onnx_accuracy) * 100
        table.add_row(f"accuracy (ORT {precision})", f"{report.onnx_accuracy:.1%} (drop {drop:+.1f} points)")
    else:
        table.add_row("accuracy (ORT)", f"{report.onnx_accuracy:.1%}")
    for lat in report.latency:
        table.add_row(
            f"latency batch {lat.batch_size}",
            f"p50 {lat.p50_ms:.2f} ms, p90 {lat.p90_ms:.2f} ms ({report.providers[0]})",
        )
    table.add_row("artifact size", f"{size / 1e6:.1f} MB (model.onnx)")
    table.add_row("artifact", str(where))
    out.print(table)


@app.command()
def targets() -> None:
    """List the deployment targets shipped in targets/."""
    from edgecut.targets import available_targets, load_target

    for name in available_targets():
        try:
            t = load_target(name)
            out.print(f"[bold]{name:10}[/] {t.precision:5} {t.description}", highlight=False, soft_wrap=True)
        except EdgecutError as e:
            out.print(f"[bold]{name:10}[/] [red]invalid: {e}[/]", highlight=False, soft_wrap=True)


@app.command()
def check(
    artifact: Annotated[Path, typer.Argument(help="Artifact directory written by `edgecut export`.")],
    target: Annotated[
        str | None, typer.Option(help="Target name or .toml path; default: the one recorded in the artifact.")
    ] = None,
    data: Annotated[
        Path | None, typer.Option("--data", "-d", help="Labelled CSV/TSV/JSONL file to measure accuracy on.")
    ] = None,
    text_column: Annotated[str, typer.Option(help="Text column of the data file.")] = "text",
    label_column: Annotated[str, typer.Option(help="Label column of the data file.")] = "label",
    min_accuracy: Annotated[
        float | None, typer.Option(help="Gate: accuracy on --data at least this (fraction, e.g. 0.85).")
    ] = None,
    max_latency_ms: Annotated[float | None, typer.Option(help="Gate: p50 latency at batch 1, in ms.")] = None,
    max_p90_ms: Annotated[float | None, typer.Option(help="Gate: p90 latency at batch 1, in ms.")] = None,
    baseline: Annotated[
        Path | None, typer.Option(help="Previous artifact: no metric may be worse by more than the margins.")
    ] = None,
    accuracy_margin: Annotated[
        float, typer.Option(help="Baseline: accuracy may drop at most this many percentage points.")
    ] = 1.0,
    latency_margin: Annotated[float, typer.Option(help="Baseline: latency may grow at most this many percent.")] = 20.0,
    latency_runs: Annotated[int, typer.Option(help="Timed runs for the latency measurement.")] = 100,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON instead of a table.")] = False,
    junit: Annotated[Path | None, typer.Option(help="Also write a JUnit XML report, one testcase per check.")] = None,
) -> None:
    """Check an artifact: integrity, golden parity, quality gates. Exit 0 pass, 1 a gate failed, 2 broken."""
    from edgecut.check import CheckSettings, check_artifact, input_error_report

    try:
        settings = CheckSettings(
            target=target,
            data=data,
            text_column=text_column,
            label_column=label_column,
            min_accuracy=min_accuracy,
            max_latency_ms=max_latency_ms,
            max_p90_ms=max_p90_ms,
            baseline=baseline,
            accuracy_margin=accuracy_margin,
            latency_margin=latency_margin,
            latency_runs=latency_runs,
        )
        report = check_artifact(artifact, settings)
    except EdgecutError as e:
        if junit:  # CI still gets a report that says why nothing was checked
            _write_report(junit, input_error_report(artifact, str(e)).to_junit())
        _fail(str(e))
    if junit:
        _write_report(junit, report.to_junit())
    if json_out:
        typer.echo(report.to_json())
    else:
        _check_table(report)
    failed = [r for r in report.results if r.passed is False]
    if report.exit_code == 2:
        console.print(
            f"[bold red]error:[/] the artifact is broken: {failed[0].name}: {failed[0].detail}",
            highlight=False,
            soft_wrap=True,
        )
    elif report.exit_code == 1:
        names = ", ".join(r.name for r in failed)
        console.print(f"[bold red]failed:[/] {len(failed)} gate(s): {names}", highlight=False, soft_wrap=True)
    else:
        console.print(f"[green]✓[/] all {len(report.results)} checks passed", highlight=False)
    raise typer.Exit(report.exit_code)


def _write_report(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        _fail(f"cannot write {path}: {e.strerror}: choose another --junit path")


def _check_table(report) -> None:
    marks = {"pass": "[green]✓ pass[/]", "fail": "[bold red]✗ fail[/]", "skip": "[dim]– skip[/]"}
    table = Table(title=f"edgecut check {report.artifact}")
    for column in ("check", "result", "measured", "threshold", "detail"):
        table.add_column(column, overflow="fold")
    for r in report.results:
        table.add_row(r.name, marks[r.status], r.value_text(r.measured), r.value_text(r.threshold), r.detail)
    out.print(table)


@app.command()
def predict(
    artifact: Annotated[Path, typer.Argument(help="Artifact directory written by `edgecut export`.")],
    texts: Annotated[
        list[str] | None, typer.Argument(help="Texts to classify; none or '-' reads stdin, one text a line.")
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Read texts from a file: one a line, or JSONL.")
    ] = None,
    jsonl: Annotated[
        bool, typer.Option(help="Input lines are JSON objects (automatic for .jsonl/.ndjson files).")
    ] = False,
    text_field: Annotated[str, typer.Option(help="Field holding the text in JSONL input.")] = "text",
    target: Annotated[
        str | None, typer.Option(help="Target name or .toml path; default: the one recorded in the artifact.")
    ] = None,
) -> None:
    """Classify texts with an artifact (torch-free): one JSON object per text on stdout."""
    import json

    from edgecut.runtime import ArtifactClassifier, read_texts

    try:
        inputs = _predict_inputs(texts or [], file, jsonl, text_field, read_texts)
        clf = ArtifactClassifier(artifact, target=target)
        cut = 0
        for text in inputs:
            (p,) = clf.predict([text])
            cut += p.truncated
            record = {
                "text": p.text,
                "label": p.label,
                "scores": p.scores,
                "truncated": p.truncated,
                "latency_ms": round(p.latency_ms, 4),
            }
            typer.echo(json.dumps(record, ensure_ascii=False))
    except EdgecutError as e:
        _fail(str(e))
    if cut:
        max_length = clf.prompt.max_length
        console.print(
            f"note: {cut} text(s) were longer than the artifact's max_length ({max_length} tokens): their end was "
            'cut the way training cut them ("truncated": true)',
            highlight=False,
            soft_wrap=True,
        )


def _predict_inputs(texts: list[str], file: Path | None, jsonl: bool, field: str, read_texts) -> list[str]:
    from edgecut.errors import DataError

    out: list[str] = []
    for t in texts:  # "-" reads stdin at its place among the arguments
        if t == "-":
            out += _stdin_texts(jsonl, field, read_texts)
        else:
            out.append(t)
    if file is not None:
        try:
            content = file.read_bytes().decode("utf-8-sig")
        except FileNotFoundError:
            raise DataError(f"--file {file} does not exist: give a text or JSONL file") from None
        except UnicodeDecodeError as e:
            raise DataError(f"--file {file} is not UTF-8 (byte {e.start}): re-encode it") from e
        is_jsonl = jsonl or file.suffix.lower() in (".jsonl", ".ndjson")
        out += read_texts(content.splitlines(), is_jsonl, field, str(file))
    if not texts and file is None:
        out += _stdin_texts(jsonl, field, read_texts)
    if not out:
        raise DataError("no texts to classify: the input was empty")
    return out


def _stdin_texts(jsonl: bool, field: str, read_texts) -> list[str]:
    from edgecut.errors import DataError

    if sys.stdin.isatty():
        raise DataError("no texts: give them as arguments, with --file, or on stdin (one a line)")
    return read_texts(sys.stdin, jsonl, field, "stdin")


@app.command()
def deploy(
    artifact: Annotated[Path, typer.Argument(help="Artifact directory written by `edgecut export`.")],
    triton: Annotated[Path, typer.Option(help="Triton model repository to write the model into.")],
    name: Annotated[str | None, typer.Option(help="Model name in the repository; default: the artifact's.")] = None,
    max_batch_size: Annotated[int, typer.Option(help="Triton max_batch_size (dynamic batching up to it).")] = 8,
    instances: Annotated[int, typer.Option(help="Model instances (instance_group count).")] = 1,
    max_queue_delay_us: Annotated[
        int, typer.Option(help="Dynamic batcher: longest wait for more requests, in microseconds.")
    ] = 100,
    force: Annotated[bool, typer.Option(help="Replace an existing REPO/NAME.")] = False,
) -> None:
    """Write a Triton model repository entry (onnxruntime backend) for an artifact."""
    from edgecut.deploy import TritonSettings, deploy_triton

    try:
        settings = TritonSettings(triton, name, max_batch_size, instances, max_queue_delay_us, force)
        done = deploy_triton(artifact, settings)
    except EdgecutError as e:
        _fail(str(e))
    accel = f", accelerator {done.accelerator}" if done.accelerator else ""
    console.print(f"[green]✓[/] Triton model '{done.name}' ({done.kind}{accel})", highlight=False)
    out.print(str(done.path), highlight=False, soft_wrap=True)
    console.print(
        f"  serve: tritonserver --model-repository {done.path.parent}  (see examples/triton.md)",
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def sweep(
    layers: Annotated[
        str, typer.Option("--layers", "-n", help="Layer counts to try, e.g. 1,2,4,8,full.")
    ] = "1,2,4,8,full",
    seeds: Annotated[str, typer.Option(help="Seeds, e.g. 0,42,421 (accuracy is mean ± sd over them).")] = "0,42,421",
    setting: Annotated[str, typer.Option(help="lm, pcls or cls (see export).")] = "lm",
    select: Annotated[str, typer.Option(help="first, block-influence or angular (see export).")] = "first",
    model: Annotated[str, typer.Option("--model", "-m", help="As in export.")] = "smollm2-135m",
    data: Annotated[str, typer.Option("--data", "-d", help="As in export.")] = "rotten-tomatoes",
    labels: Annotated[str | None, typer.Option(help="As in export.")] = None,
    label_words: Annotated[str | None, typer.Option(help="As in export.")] = None,
    template: Annotated[str | None, typer.Option(help="As in export.")] = None,
    recipe: Annotated[str, typer.Option(help="Training preset for every run: cpu or paper.")] = "cpu",
    epochs: Annotated[float | None, typer.Option(help="Override the recipe's epochs.")] = None,
    per_class_cap: Annotated[int | None, typer.Option(help="Override the recipe's training rows per class.")] = None,
    time_budget: Annotated[float | None, typer.Option(help="Training seconds per run at most.")] = None,
    test_size: Annotated[int, typer.Option(help="Test rows per run.")] = 1000,
    baselines: Annotated[
        str,
        typer.Option(
            help="Baselines on the same split, comma-separated: tfidf (TF-IDF + logistic regression), minilm "
            "(all-MiniLM-L6-v2 fine-tuned and exported the same way), or none."
        ),
    ] = "tfidf",
    margin: Annotated[
        float, typer.Option(help="Recommend the smallest N within this many accuracy points of the best.")
    ] = 1.0,
    output: Annotated[Path, typer.Option("--output", "-o", help="Sweep directory (resumed if it exists).")] = Path(
        "sweep-out"
    ),
) -> None:
    """Export every (N, seed), then table, JSON and plot of accuracy and latency against N. Resumable."""
    with _exit_codes(
        interrupted=f"interrupted: finished runs are kept in {output}/runs; run the same command to resume"
    ):
        _sweep(**locals())


def _sweep(
    layers,
    seeds,
    setting,
    select,
    model,
    data,
    labels,
    label_words,
    template,
    recipe,
    epochs,
    per_class_cap,
    time_budget,
    test_size,
    baselines,
    margin,
    output,
) -> None:
    import inspect

    from rich.progress_bar import ProgressBar

    from edgecut import sweep as sw

    seed_list, wanted = sw.parse_seeds(seeds), sw.parse_baselines(baselines)
    runs = sw.plan(sw.parse_layers(layers), seed_list, wanted)
    if margin < 0:
        raise EdgecutError(f"--margin {margin:g} must be 0 or more (accuracy points)")
    # Every run is an ordinary export: same defaults, the sweep's options on top.
    options = dict(
        setting=setting,
        select=select,
        model=model,
        data=data,
        labels=labels,
        label_words=label_words,
        template=template,
        recipe=recipe,
        epochs=epochs,
        per_class_cap=per_class_cap,
        time_budget=time_budget,
        test_size=test_size,
    )
    sw.check_options(output, options)
    base = {name: p.default for name, p in inspect.signature(export).parameters.items()} | options
    done = [r for r in runs if sw.is_done(output, r)]
    console.print(f"sweep: {len(runs)} runs ({len(done)} already done) in {output}")
    durations: list[float] = []
    failed: list[str] = []
    for i, run in enumerate(runs):
        if sw.is_done(output, run):
            continue
        left = sw.eta_seconds(durations, sum(not sw.is_done(output, r) for r in runs))
        eta = "estimating time left…" if left is None else f"about {left / 60:.0f} min left"
        console.print(ProgressBar(total=len(runs), completed=i, width=40))
        what = f"baseline {run.baseline}" if run.baseline else f"N={run.layers}"
        console.rule(f"run {i + 1}/{len(runs)}: {what}, seed {run.seed} — {eta}")
        overrides = {"layers": run.layers, "seed": run.seed, "output": sw.run_dir(output, run), "force": False}
        if run.baseline:  # the encoder at full depth, plain text into a fresh head (no template)
            encoder = {"model": sw.ENCODER_BASELINES[run.baseline], "setting": "cls", "select": "first"}
            overrides |= encoder | {"template": None}
        start = time.monotonic()
        try:
            _export(**(base | overrides))
        except ParityError as e:  # this run's numbers, not the sweep's inputs: the other runs still count
            failed.append(f"{run.name}: {e}")
            console.print(f"[bold red]✗[/] {run.name} left out: {e}", highlight=False)
            continue
        durations.append(time.monotonic() - start)
    finished = sw.finished_runs(output)  # failed runs are not among them
    if failed and not finished:
        raise ParityError(f"no run finished; {'; '.join(failed)}")
    # The reports cover every finished run in the directory (earlier invocations may have added other N);
    # baseline runs count only when asked for.
    measured = [r for r in finished if not r.baseline or r.baseline in wanted]
    with _step("time fp32 and int8 graphs of every run"):
        results = {run: sw.measure_run(output, run) for run in measured}
    by_depth = {(res.layers, run.seed): res for run, res in results.items() if not run.baseline}
    floors = [sw.as_baseline(run, res) for run, res in results.items() if run.baseline]
    if "tfidf" in wanted:
        from edgecut.baselines import tfidf_baseline
        from edgecut.data import DataSpec, load_dataset
        from edgecut.finetune import get_recipe

        cap = get_recipe(recipe, per_class_cap=per_class_cap).per_class_cap
        with _step("TF-IDF + logistic regression baseline on the same splits"):
            for seed in sorted({seed for _, seed in by_depth}):
                spec = DataSpec(
                    source=data,
                    labels=_split(labels),
                    label_words=_split(label_words),
                    seed=seed,
                    test_size=test_size,
                    per_class_cap=cap,
                    demonstrations=False,
                )
                floors.append(tfidf_baseline(load_dataset(spec), seed))
    title = f"{Path(model).name} on {Path(data).name}: setting {setting}, select {select}"
    settings = {"title": title} | options  # N and seeds: per row (a directory may mix invocations)
    summary = sw.summarize(list(by_depth.values()), margin, settings, floors)
    paths = sw.write_reports(summary, output)
    table = Table(title=title)
    for column in ("N", "seeds", "accuracy", "params", "fp32 MB", "int8 MB", "fp32 p50 ms", "int8 p50 ms"):
        table.add_column(column, justify="right")
    for r in summary.rows:
        star = " ★" if r.layers == summary.recommended_layers else ""
        table.add_row(f"{sw.layer_label(r)}{star}", *sw.layer_cells(r))
    for b in summary.baselines:
        table.add_row(f"{b.name} (baseline)", *sw.baseline_cells(b))
    out.print(table)
    out.print(
        f"recommended: N = {summary.recommended_layers} (within {margin:g} points of the best mean, "
        f"N = {summary.best_layers}); reports: {', '.join(str(p) for p in paths.values())}"
    )
    if failed:
        raise ParityError(
            f"{len(failed)} run(s) left out of the reports ({'; '.join(failed)}); the same command retries only them"
        )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
