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
out = Console()


def _fail(message: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


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
    layers: Annotated[int, typer.Option("--layers", "-n", help="Keep the first N transformer layers.")] = 1,
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
    quantize: Annotated[str, typer.Option(help="none or int8 (ONNX Runtime dynamic quantization).")] = "none",
    trust_remote_code: Annotated[bool, typer.Option(help="Allow model code from the hub (off by default).")] = False,
) -> None:
    """Cut, fine-tune, export, validate: write a self-describing ONNX artifact."""
    try:
        _export(**locals())
    except EdgecutError as e:
        _fail(str(e))
    except ParityError as e:
        _fail(str(e), code=1)
    except KeyboardInterrupt:
        _fail("interrupted: nothing was written", code=130)


def _export(
    model,
    data,
    layers,
    target,
    output,
    force,
    labels,
    label_words,
    template,
    text_column,
    label_column,
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
    from edgecut.runtime import check_target_available, create_session, pad_batch
    from edgecut.targets import load_target

    # Everything that can be checked without the model is checked first: bad input fails in a second.
    if layers < 1:
        raise EdgecutError(f"--layers {layers} is out of range: keep at least 1 layer")
    if quantize not in ("none", "int8"):
        raise EdgecutError(f"--quantize {quantize}: use none or int8")
    tgt = load_target(target)
    check_target_available(tgt)
    if quantize == "int8" and tgt.providers[0] != "CPUExecutionProvider":
        raise EdgecutError(
            f"--quantize int8 is dynamic int8 for the CPU provider; target '{tgt.name}' runs "
            f"{tgt.providers[0]}: use --target cpu"
        )
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
                template=template,
                seed=seed,
                test_size=test_size,
                per_class_cap=rcp.per_class_cap,
                demonstrations=rcp.demonstrations,
            )
        )
    console.print(
        f"  {dataset.name}: {len(dataset.train)} train / {len(dataset.validation)} validation / "
        f"{len(dataset.test)} test, classes {', '.join(dataset.labels)}"
    )

    from edgecut.classifier import label_token_ids, make_classifier
    from edgecut.export import check_parity, export_onnx, torch_logits
    from edgecut.finetune import finetune
    from edgecut.load import load_model
    from edgecut.prune import cut_to_first
    from edgecut.quantize import quantize_int8
    from edgecut.validate import validate

    with _step(f"load {model}"):
        loaded = load_model(model, trust_remote_code=trust_remote_code)
    with _step(f"cut to the first {layers} layer(s)"):
        pruned = cut_to_first(loaded.model, layers)
    console.print(
        f"  parameters {pruned.params_before / 1e6:.1f} M → {pruned.params_after / 1e6:.1f} M "
        f"({pruned.depth_before} → {layers} layers)"
    )

    tok = loaded.tokenizer
    init = "random" if loaded.is_encoder else "lm"
    classifier = make_classifier(loaded.model, tok, dataset.labels, dataset.label_words, init=init)
    prompt = PromptFormat(dataset.template, tuple(dataset.demonstrations), rcp.max_length)
    train, _ = encode_examples(tok, prompt, dataset.train)
    val, _ = encode_examples(tok, prompt, dataset.validation)
    test, test_cut = encode_examples(tok, prompt, dataset.test)
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

    with art.staging(output, force) as tmp, tempfile.TemporaryDirectory(prefix="edgecut-fp32-") as scratch:
        fp32_path = Path(scratch) / "model.onnx"
        sample = pad_batch(test_ids[:2], tok.pad_token_id)
        with _step("export to ONNX"):
            exported = export_onnx(classifier, sample, fp32_path)
            fp32_session = create_session(fp32_path, tgt)
            parity_rows = test_ids[:64]
            parity = check_parity(
                reference[: len(parity_rows)], _ort_logits(fp32_session, parity_rows, tok.pad_token_id), tgt.parity_atol
            )
        console.print(
            f"  parity: max |Δlogit| {parity.max_abs_diff:.1e} on {parity.rows} test prompts, argmax identical"
        )
        quant = None
        if quantize == "int8":
            with _step("quantize to int8"):
                quant = quantize_int8(fp32_path, tmp / "model.onnx")
            session = create_session(tmp / "model.onnx", tgt)
        else:
            for f in Path(scratch).iterdir():
                f.rename(tmp / f.name)
            session = fp32_session = create_session(tmp / "model.onnx", tgt)

        with _progress() as bar:
            task = bar.add_task("ONNX Runtime accuracy", total=len(test_ids) * (2 if quant else 1))
            report = validate(
                reference,
                session,
                test_ids,
                test_labels,
                tok.pad_token_id,
                fp32_session=fp32_session if quant else None,
                on_batch=lambda n: bar.advance(task, n),
            )

        golden_feed = pad_batch(test_ids[:8], tok.pad_token_id)
        art.write_golden(tmp, golden_feed, session.run(["logits"], golden_feed)[0])
        classifier.config.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        art.write_manifest(
            tmp,
            {
                "model_file": "model.onnx",
                "source_model": {"source": loaded.source, "resolved": loaded.resolved, "sha256": loaded.sha256},
                "architecture": classifier.config.architectures[0],
                "layers": {"kept": list(pruned.kept_layers), "total": pruned.depth_before},
                "parameters": {"before": pruned.params_before, "after": pruned.params_after},
                "labels": dataset.labels,
                "label_words": dataset.label_words,
                "label_token_ids": label_token_ids(tok, dataset.label_words) if init == "lm" else None,
                "head_init": init,
                "prompt": prompt.as_dict(),
                "pad_token_id": tok.pad_token_id,
                "precision": "int8" if quant else "fp32",
                "quantization": None
                if quant is None
                else {"mode": quant.mode, "op_types": list(quant.op_types), "weight_type": "int8"},
                "target": tgt.as_dict(),
                "providers_used": report.providers,
                "signature": {
                    "inputs": {"input_ids": ["batch", "sequence"], "attention_mask": ["batch", "sequence"]},
                    "outputs": {"logits": ["batch", len(dataset.labels)]},
                    "dtype": "int64",
                },
                "opset": exported.opset,
                "exporter": exported.exporter,
                "external_data": exported.external_data,
                "recipe": vars(rcp) | {},
                "data": dataset.summary() | {"test_queries_truncated": test_cut},
                "training": {
                    "seconds": round(tuned.seconds, 1),
                    "steps": tuned.steps,
                    "stopped_by": tuned.stopped_by,
                    "validation_accuracy": tuned.validation_accuracy,
                },
                "metrics": report.as_dict() | {"parity_max_abs_diff": parity.max_abs_diff},
                "golden": {"file": art.GOLDEN, "atol": tgt.parity_atol if not quant else 1e-3},
            },
        )
        size = sum(f.stat().st_size for f in tmp.iterdir() if f.name.startswith("model.onnx"))

    _summary(layers, pruned, report, size, output.resolve())


def _ort_logits(session, sequences, pad_id):
    from edgecut.runtime import run_logits

    return run_logits(session, sequences, pad_id)


def _summary(layers, pruned, report, size: int, where: Path) -> None:
    table = Table(title="edgecut export", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("layers kept", f"{layers} of {pruned.depth_before}")
    table.add_row("parameters", f"{pruned.params_before / 1e6:.1f} M → {pruned.params_after / 1e6:.1f} M")
    table.add_row("accuracy (torch)", f"{report.torch_accuracy:.1%} on {report.rows} test rows")
    if report.onnx_fp32_accuracy is not None:
        table.add_row("accuracy (ORT fp32)", f"{report.onnx_fp32_accuracy:.1%}")
        drop = (report.onnx_fp32_accuracy - report.onnx_accuracy) * 100
        table.add_row("accuracy (ORT int8)", f"{report.onnx_accuracy:.1%} (drop {drop:+.1f} points)")
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
            out.print(f"[bold]{name:10}[/] {t.description}", highlight=False)
        except EdgecutError as e:
            out.print(f"[bold]{name:10}[/] [red]invalid: {e}[/]", highlight=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
