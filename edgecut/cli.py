"""The `edgecut` command. Thin on purpose: parse options into a settings object, call the library, print.

export → `edgecut.pipeline.export(ExportSettings)`; sweep → `edgecut.sweeps.sweep.run_sweep(SweepSettings)`;
check, predict and deploy → their modules' settings dataclasses.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import sys
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer._click import exceptions as click_errors  # typer 0.29 vendors click: its exceptions live here
from typer.core import TyperGroup

from edgecut.errors import EdgecutError, ParityError, Terminated
from edgecut.settings import CheckSettings, ExportSettings, Option, cli_option
from edgecut.terminal import (
    RichProgress,
    check_table,
    console,
    export_summary,
    out,
    sweep_table,
    warn_below_baseline,
)


class OneLineErrors(TyperGroup):
    """Every command's bad option value, unknown option or missing argument ends in one `error:` line and exit
    2, as edgecut's own errors do, instead of click's usage box."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click_errors.NoArgsIsHelpError as e:  # `edgecut` or `edgecut check` alone: the help
            typer.echo(e.ctx.get_help() if e.ctx else e.format_message())
            sys.exit(e.exit_code)
        except click_errors.ClickException as e:
            where = f" (see `{e.ctx.command_path} --help`)" if getattr(e, "ctx", None) else ""
            console.print("[bold red]error:[/] " + escape(e.format_message() + where), highlight=False, soft_wrap=True)
            sys.exit(2 if isinstance(e, click_errors.UsageError) else e.exit_code)
        except typer.Abort:
            console.print("[bold red]error:[/] interrupted", highlight=False)
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=OneLineErrors,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Cut an LLM to its first N layers, fine-tune it as a classifier, ship it as ONNX.",
)


def _fail(message: str, code: int = 2) -> None:
    # User text (paths, templates, labels) is printed literally: markup off for the message itself.
    console.print("[bold red]error:[/] " + escape(message), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def _exit_codes(interrupted: str) -> Iterator[None]:
    """User mistakes exit 2, a graph that does not match torch 1, Ctrl-C 130, SIGTERM 143: one line each."""
    from edgecut.signals import terminate_as_interrupt

    try:
        with terminate_as_interrupt():
            yield
    except EdgecutError as e:
        _fail(str(e))
    except ParityError as e:
        _fail(str(e), code=1)
    except Terminated:
        _fail(f"terminated: {interrupted}", code=143)
    except KeyboardInterrupt:
        _fail(f"interrupted: {interrupted}", code=130)


def _option_parameters(keep: Callable[[str, Option], bool], cls: type = ExportSettings) -> list[inspect.Parameter]:
    """Typer parameters for the fields of a settings dataclass (ExportSettings, CheckSettings) that `keep`
    selects, derived from their one declaration (`edgecut.settings.option`): type, default, help, spelling."""
    hints = typing.get_type_hints(cls)
    params = []
    for f in dataclasses.fields(cls):
        name, opt = f.name, cli_option(f)
        if opt is None or not keep(name, opt):
            continue
        tp, default = hints[name], f.default
        if opt.cli_type is not None:  # a comma list or "full"/"auto" as text: parsed by ExportSettings
            tp, default = opt.cli_type | None, None if default in ((), None) else str(default)
        long = () if any(n.startswith("--") for n in opt.names) else (f"--{name.replace('_', '-')}",)
        option = typer.Option(*long, *opt.names, help=opt.help)
        params.append(inspect.Parameter(name, KEYWORD, default=default, annotation=Annotated[tp, option]))
    return params


def _given(ctx: typer.Context, values: dict[str, Any], cls: type = ExportSettings) -> dict[str, Any]:
    """The settings typed on the command line (not left at their defaults), parsed to field values."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    given = {}
    for name, value in values.items():
        source = ctx.get_parameter_source(name)
        if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP"):
            parse = cli_option(fields[name]).parse
            given[name] = parse(value) if parse else value
    return given


def _signature(func: Callable, extra: list[inspect.Parameter]) -> Callable:
    """`func` with its `**values` replaced by `extra` in the signature Typer reads."""
    params = inspect.signature(func, eval_str=True).parameters.values()
    own = [p for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD]
    func.__signature__ = inspect.Signature([*own, *extra])
    return func


KEYWORD = inspect.Parameter.KEYWORD_ONLY
ConfigOption = Annotated[
    Path | None,
    typer.Option(help="A TOML file of export settings (keys: the manifest's settings names); options given here win."),
]
LikeOption = Annotated[
    Path | None,
    typer.Option(help="Repeat the settings an artifact recorded (all but --output); options given here win."),
]


def export(ctx: typer.Context, *, config: ConfigOption = None, like: LikeOption = None, **values: Any) -> None:
    """Cut, fine-tune, export, validate: write a self-describing ONNX artifact."""
    from edgecut.pipeline import export as run_export
    from edgecut.settings import load_settings

    with _exit_codes(interrupted="nothing was written"):
        settings = load_settings(_given(ctx, values), config, like)
        result = run_export(settings, RichProgress())
    if result is not None:  # None: a non-main process of a multi-process launch
        out.print(export_summary(result))
        warn_below_baseline(result)


app.command()(_signature(export, _option_parameters(lambda name, opt: True)))


@app.command()
def targets() -> None:
    """List the deployment targets shipped in targets/."""
    from edgecut.targets import available_targets, load_target

    for name in available_targets():
        try:
            t = load_target(name)
            out.print(
                f"[bold]{escape(name):10}[/] {t.precision:5} {escape(t.description)}", highlight=False, soft_wrap=True
            )
        except EdgecutError as e:
            out.print(f"[bold]{escape(name):10}[/] [red]invalid: {escape(str(e))}[/]", highlight=False, soft_wrap=True)


def check(
    ctx: typer.Context,
    artifact: Annotated[Path, typer.Argument(help="Artifact directory written by `edgecut export`.")],
    *,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON instead of a table.")] = False,
    junit: Annotated[Path | None, typer.Option(help="Also write a JUnit XML report, one testcase per check.")] = None,
    **values: Any,
) -> None:
    """Check an artifact: integrity, golden parity, quality gates. Exit 0 pass, 1 a gate failed, 2 broken."""
    from edgecut.artifacts.check import check_artifact

    with _exit_codes(interrupted="nothing was checked"), _junit_on_input_error(junit, artifact):
        settings = CheckSettings(**_given(ctx, values, CheckSettings))
        report = check_artifact(artifact, settings)
    if junit:
        _write_report(junit, report.to_junit())
    if json_out:
        typer.echo(report.to_json())
    else:
        out.print(check_table(report))
    failed = [r for r in report.results if r.passed is False]
    if report.exit_code == 2:
        console.print(
            "[bold red]error:[/] " + escape(f"the artifact is broken: {failed[0].name}: {failed[0].detail}"),
            highlight=False,
            soft_wrap=True,
        )
    elif report.exit_code == 1:
        names = ", ".join(r.name for r in failed)
        console.print(f"[bold red]failed:[/] {len(failed)} gate(s): {names}", highlight=False, soft_wrap=True)
    else:
        console.print(f"[green]✓[/] all {len(report.results)} checks passed", highlight=False)
    raise typer.Exit(report.exit_code)


@contextlib.contextmanager
def _junit_on_input_error(junit: Path | None, artifact: Path) -> Iterator[None]:
    """With --junit, CI still gets a report that says why nothing was checked; the error goes on."""
    from edgecut.artifacts.check_report import input_error_report

    try:
        yield
    except EdgecutError as e:
        if junit:
            _write_report(junit, input_error_report(artifact, str(e)).to_junit())
        raise


app.command()(_signature(check, _option_parameters(lambda name, opt: True, CheckSettings)))


def _write_report(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        _fail(f"cannot write {path}: {e.strerror}: choose another --junit path")


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
    batch_size: Annotated[
        int, typer.Option(help="Texts per ONNX Runtime call (sorted by length, so little padding is wasted).")
    ] = 32,
) -> None:
    """Classify texts with an artifact (torch-free): one JSON object per text on stdout."""
    import json

    from edgecut.runtime import ArtifactClassifier, read_inputs

    with _exit_codes(interrupted="nothing was classified"):
        if batch_size < 1:
            raise EdgecutError(f"--batch-size {batch_size} must be at least 1")
        inputs = read_inputs(texts or [], file, jsonl, text_field, sys.stdin)
        clf = ArtifactClassifier(artifact, target=target)
        predictions = clf.predict(inputs, batch_size=batch_size)
    for p in predictions:
        record = {
            "text": p.text,
            "label": p.label,
            "scores": p.scores,
            "truncated": p.truncated,
            "latency_ms": round(p.latency_ms, 4),
        }
        typer.echo(json.dumps(record, ensure_ascii=False))
    cut = sum(p.truncated for p in predictions)
    if cut:
        console.print(
            f"note: {cut} text(s) were longer than the artifact's max_length ({clf.prompt.max_length} tokens): their "
            'end was cut the way training cut them ("truncated": true)',
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def deploy(
    artifact: Annotated[Path, typer.Argument(help="Artifact directory written by `edgecut export`.")],
    triton: Annotated[Path | None, typer.Option(help="Triton model repository to write the model into.")] = None,
    web: Annotated[
        Path | None, typer.Option(help="Directory for a static page that classifies in the browser (WASM).")
    ] = None,
    mobile: Annotated[
        Path | None, typer.Option(help="Directory for phones: the graph in ORT format, its operator config.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Model name in the repository; default: the artifact's.")] = None,
    max_batch_size: Annotated[int, typer.Option(help="Triton max_batch_size (dynamic batching up to it).")] = 8,
    instances: Annotated[int, typer.Option(help="Model instances (instance_group count).")] = 1,
    max_queue_delay_us: Annotated[
        int, typer.Option(help="Dynamic batcher: longest wait for more requests, in microseconds.")
    ] = 100,
    force: Annotated[bool, typer.Option(help="Replace an existing REPO/NAME that edgecut wrote.")] = False,
    strings: Annotated[
        bool, typer.Option(help="Serve model_text.onnx: raw text in (BPE or uncased WordPiece; ORT extensions).")
    ] = False,
    extensions_library: Annotated[
        str | None, typer.Option(help="Path of libortextensions.so on the Triton server (with --strings).")
    ] = None,
) -> None:
    """Write a Triton model repository entry, a static web page (--web) or a phone bundle (--mobile)."""
    from edgecut.serving.deploy import EXTENSIONS_LIBRARY, TritonSettings, deploy_triton

    if sum(x is not None for x in (triton, web, mobile)) != 1:
        _fail("give exactly one of --triton REPO, --web DIR or --mobile DIR")
    if web is not None or mobile is not None:
        from edgecut.serving.mobile import deploy_edge

        if strings or name is not None or extensions_library is not None:
            _fail("--name, --strings and --extensions-library are for --triton; --web and --mobile take none")

        with _exit_codes("nothing was written"):
            for line in deploy_edge(artifact, web, mobile, force):
                out.print(line, markup=False, highlight=False, soft_wrap=True)
        return
    with _exit_codes(interrupted="nothing was written"):
        library = extensions_library or EXTENSIONS_LIBRARY
        settings = TritonSettings(triton, name, max_batch_size, instances, max_queue_delay_us, force, strings, library)
        done = deploy_triton(artifact, settings)
    accel = f", accelerator {done.accelerator}" if done.accelerator else ""
    for warning in done.warnings:
        console.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)
    console.print("[green]✓[/] " + escape(f"Triton model '{done.name}' ({done.kind}{accel})"), highlight=False)
    out.print(str(done.path), markup=False, highlight=False, soft_wrap=True)
    serve = (
        f"  serve: ORT_DISABLE_TELEMETRY=1 tritonserver --model-repository {done.path.parent}  (see examples/triton.md)"
    )
    console.print(serve, markup=False, highlight=False, soft_wrap=True)


def sweep(
    ctx: typer.Context,
    *,
    layers: Annotated[
        str, typer.Option("--layers", "-n", help="Layer counts to try, e.g. 1,2,4,8,full.")
    ] = "1,2,4,8,full",
    seeds: Annotated[str, typer.Option(help="Seeds, e.g. 0,42,421 (accuracy is mean ± sd over them).")] = "0,42,421",
    baselines: Annotated[
        str,
        typer.Option(help="Baselines on the same split: tfidf, fasttext, model2vec, minilm (comma-separated) or none."),
    ] = "tfidf",
    margin: Annotated[
        float,
        typer.Option(help="Recommend the fastest point (a cut or a peer) within this many points of the best."),
    ] = 1.0,
    shard: Annotated[
        str | None, typer.Option(help="K/N: run only every N-th run of the grid, from the K-th (job arrays).")
    ] = None,
    report: Annotated[
        bool, typer.Option("--report", help="Run nothing: build the tables and plot from the finished runs.")
    ] = False,
    distill: Annotated[bool, typer.Option("--distill", help="Each cut learns from its seed's full run.")] = False,
    ray: Annotated[
        str | None,
        typer.Option(help="Run the cells as Ray tasks: 'local' (a Ray started here) or a cluster address."),
    ] = None,
    teacher_gpu: Annotated[
        bool, typer.Option("--teacher-gpu", help="With --ray: each full-depth run asks Ray for a GPU.")
    ] = False,
    output: Annotated[Path, typer.Option("--output", "-o", help="Sweep directory (resumed if it exists).")] = Path(
        "sweep-out"
    ),
    **shared: Any,
) -> None:
    """Export every (N, seed), then table, JSON and plot of accuracy and latency against N. Resumable."""
    from edgecut.sweeps import sweep as sw

    with _exit_codes(interrupted=f"finished runs are kept in {output}/runs; run the same command to resume"):
        # Every run is an ordinary export: the options given here, export's defaults for the rest. What binds
        # the directory (sweep-options.json) is what was typed; pooling is compared through each run's manifest.
        given = _given(ctx, shared)
        typed = {k: v for k, v in shared.items() if k in given and k != "pooling"}
        options = typed | ({"lr": given["lr"]} if "lr" in given else {}) | ({"distill": True} if distill else {})
        settings = sw.SweepSettings(
            layers=tuple(sw.parse_layers(layers)),
            seeds=tuple(sw.parse_seeds(seeds)),
            base=ExportSettings(**given),
            options=options,
            output=output,
            baselines=tuple(sw.parse_baselines(baselines)),
            margin=margin,
            shard=sw.parse_shard(shard),
            report_only=report,
            distill=distill,
            ray=ray,
            teacher_gpu=teacher_gpu,
        )
        run = sw.run_sweep
        if ray is not None:  # every cell a Ray task; Ray itself is imported only as the cells are placed
            from edgecut.sweeps.sweep_ray import run_sweep_on_ray as run
        outcome = run(settings, RichProgress())
    if outcome.summary is not None:
        out.print(sweep_table(outcome.summary))
        out.print(
            f"recommended: {outcome.summary.recommendation}; of the cuts: N = {outcome.summary.recommended_layers}; "
            f"reports: {', '.join(str(p) for p in outcome.reports.values())}",
            markup=False,
            highlight=False,
        )
    if outcome.failed:
        left = "; ".join(outcome.failed)
        _fail(
            f"{len(outcome.failed)} run(s) left out of the reports ({left}); the same command retries only them",
            2 if outcome.bad_input else 1,
        )


app.command()(_signature(sweep, _option_parameters(lambda name, opt: opt.sweep)))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
