"""What edgecut shows in a terminal: progress (stages, bars, one training bar) and the summary tables.

User text (paths, labels, templates, error details) is always printed literally, never as rich markup.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from edgecut.pipeline import ExportResult
from edgecut.pipeline import Progress as PipelineProgress
from edgecut.sweeps.sweep_report import SweepSummary, baseline_cells, layer_cells, layer_label

console = Console(stderr=True)  # progress, notes and errors
out = Console()  # results: tables, paths


class RichProgress(PipelineProgress):
    """The pipeline's progress as rich status lines, bars, and one training bar with loss and accuracy."""

    def __init__(self) -> None:
        self._train: Progress | None = None
        self._task = None

    @contextlib.contextmanager
    def stage(self, title: str) -> Iterator[None]:
        start = time.monotonic()
        if title == "fine-tune":  # its own bar (training()), no spinner on top of it
            try:
                yield
            finally:
                if self._train is not None:
                    self._train.stop()
                    self._train = None
        else:
            with console.status(escape(title) + "…"):
                yield
        console.print(f"[green]✓[/] {escape(title)} [dim]({time.monotonic() - start:.1f}s)[/]", highlight=False)

    def note(self, text: str) -> None:
        console.print("  " + text, markup=False, highlight=False, soft_wrap=True)

    def warn(self, text: str) -> None:
        console.print("warning: " + text, markup=False, highlight=False, soft_wrap=True)

    @contextlib.contextmanager
    def counter(self, title: str, total: int) -> Iterator:
        with _bar() as bar:
            task = bar.add_task(title, total=total)
            yield lambda n: bar.advance(task, n)

    def training(self, update) -> None:
        if not console.is_terminal:
            return
        if self._train is None:
            self._train = Progress(
                TextColumn("training"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            )
            self._train.start()
            self._task = self._train.add_task("train", total=update.total_steps, info="")
        accuracy = "" if update.validation_accuracy is None else f", val acc {update.validation_accuracy:.1%}"
        loss = "" if update.loss is None else f"loss {update.loss:.3f}"
        self._train.update(self._task, completed=update.step, total=update.total_steps, info=loss + accuracy)


def _bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


def export_summary(r: ExportResult) -> Table:
    """The table `edgecut export` ends with."""
    table = Table(title="edgecut export", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("layers kept", f"{r.layers} of {r.depth}")
    table.add_row("parameters", f"{r.params_before / 1e6:.1f} M → {r.params_after / 1e6:.1f} M")
    table.add_row("accuracy (torch)", f"{r.torch_accuracy:.1%} on {r.test_rows} test rows")
    if r.onnx_fp32_accuracy is not None:
        table.add_row("accuracy (ORT fp32)", f"{r.onnx_fp32_accuracy:.1%}")
        drop = (r.onnx_fp32_accuracy - r.onnx_accuracy) * 100
        table.add_row(f"accuracy (ORT {r.precision})", f"{r.onnx_accuracy:.1%} (drop {drop:+.1f} points)")
    else:
        table.add_row("accuracy (ORT)", f"{r.onnx_accuracy:.1%}")
    if r.baseline_accuracy is not None:
        chosen = f"; {r.baseline_detail}" if r.baseline_detail else ""
        floor = f"{r.baseline_accuracy:.1%} (same rows; the floor to beat{chosen})"
        table.add_row("TF-IDF floor (tuned)", escape(floor))
    for lat in r.latency:
        table.add_row(
            f"latency batch {lat['batch_size']}",
            f"p50 {lat['p50_ms']:.2f} ms, p90 {lat['p90_ms']:.2f} ms ({r.providers[0]})",
        )
    table.add_row("artifact size", f"{r.model_bytes / 1e6:.1f} MB (model.onnx)")
    table.add_row("artifact", escape(str(r.path)))
    return table


def warn_below_baseline(r: ExportResult) -> None:
    """A user must never ship a model that a 1 MB linear model beats without being told."""
    if r.baseline_accuracy is not None and r.onnx_accuracy <= r.baseline_accuracy:
        console.print(
            f"warning: the exported model ({r.onnx_accuracy:.1%}) does not beat TF-IDF + logistic regression "
            f"({r.baseline_accuracy:.1%}, tuned on validation) on the same test rows",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def check_table(report) -> Table:
    """`edgecut check`'s report as a table (user text in it printed literally)."""
    marks = {"pass": "[green]✓ pass[/]", "fail": "[bold red]✗ fail[/]", "skip": "[dim]– skip[/]"}
    table = Table(title=escape(f"edgecut check {report.artifact}"))
    for column in ("check", "result", "measured", "threshold", "detail"):
        table.add_column(column, overflow="fold")
    for r in report.results:
        cells = (r.name, r.value_text(r.measured), r.value_text(r.threshold), r.detail)
        name, measured, threshold, detail = map(escape, cells)
        table.add_row(name, marks[r.status], measured, threshold, detail)
    return table


def sweep_table(summary: SweepSummary) -> Table:
    """The sweep's summary: one row per N (★ the recommended one), then the baselines."""
    table = Table(title=escape(summary.settings.get("title", "edgecut sweep")))
    for column in ("N", "seeds", "accuracy", "params", "fp32 MB", "int8 MB", "fp32 p50 ms", "int8 p50 ms"):
        table.add_column(column, justify="right")
    for r in summary.rows:
        star = " ★" if r.layers == summary.recommended_layers else ""
        table.add_row(f"{layer_label(r)}{star}", *layer_cells(r))
    for b in summary.baselines:
        table.add_row(escape(f"{b.name} (baseline)"), *baseline_cells(b))
    return table
