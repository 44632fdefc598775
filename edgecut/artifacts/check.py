"""`edgecut check`: is an artifact intact, does it reproduce its golden logits, is it good enough.

Three kinds of check, run in this order because each needs the one before to mean anything:

- integrity (no session): manifest, every file's sha256, `onnx.checker`, the graph's signature, the opset;
- parity: golden.npz through ONNX Runtime on the target's providers, within the recorded tolerance and
  with the same argmax;
- gates: accuracy on a labelled file, latency at batch 1, and no metric worse than a baseline artifact's
  by more than a margin.

A failed integrity or parity check means the artifact is broken (exit 2); a failed gate means it works
but is not good enough (exit 1). Torch-free: onnx, onnxruntime, numpy and tokenizers only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgecut.artifacts.check_report import GATE, INTEGRITY, PARITY, CheckReport, CheckResult
from edgecut.artifacts.manifest import (
    MANIFEST,
    TOKENIZER,
    Manifest,
    member,
    read_golden,
    read_manifest,
    recorded_target,
    sha256_file,
)
from edgecut.errors import ArtifactError, DataError, EdgecutError
from edgecut.graph.validate import accuracy as accuracy_of
from edgecut.runtime import ArtifactClassifier, check_target_available, measure_latency, run_logits
from edgecut.settings import CheckSettings
from edgecut.targets import load_target

LATENCY_ROWS = 64  # prompts cycled through by the latency measurement
# ONNX TensorProto element types the signature may name (manifest "dtype" and the float logits).
_ONNX_TYPES = {1: "float32", 6: "int32", 7: "int64", 10: "float16", 11: "float64", 16: "bfloat16"}


def check_artifact(directory: str | Path, settings: CheckSettings) -> CheckReport:
    """Run every check on `directory` and return the report; the report's exit_code is the verdict.

    Raises:
        EdgecutError: wrong input rather than a broken artifact: no such directory, an unknown target or
            one whose provider is missing here, a bad data file, labels the artifact lacks, a broken baseline.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ArtifactError(f"{directory} is not a directory: give the artifact directory `edgecut export -o` wrote")
    # Wrong input fails before any work: an unknown target, a bad data file.
    target = load_target(settings.target) if settings.target else None
    rows = _read_rows(settings) if settings.data else None
    baseline = _baseline(settings.baseline) if settings.baseline else None
    report = CheckReport(
        artifact=str(directory.resolve()),
        settings={
            "min_accuracy": settings.min_accuracy,
            "max_latency_ms": settings.max_latency_ms,
            "max_p90_ms": settings.max_p90_ms,
            "baseline": str(settings.baseline) if settings.baseline else None,
            "accuracy_margin_points": settings.accuracy_margin,
            "latency_margin_percent": settings.latency_margin,
            "latency_runs": settings.latency_runs,
        },
    )
    report.results += integrity_checks(directory)
    if report.results[0].passed:  # the manifest is readable: more wrong input to rule out
        manifest = read_manifest(directory)
        target = target or recorded_target(manifest)
        check_target_available(target)
        if rows is not None:
            _check_labels(rows, manifest["labels"], settings)
    report.target = target.name if target else ""
    runtime = [("parity", PARITY), ("latency_p50", GATE), ("latency_p90", GATE)]
    if rows is not None:
        runtime.insert(1, ("accuracy", GATE))
    if baseline is not None:
        runtime += [("baseline_accuracy", GATE), ("baseline_latency_p50", GATE), ("baseline_latency_p90", GATE)]
    if settings.min_margin_over_baseline is not None:
        runtime.append(("margin_over_tfidf", GATE))
    if any(r.passed is False for r in report.results):
        report.results += [
            CheckResult(n, k, None, "skipped: the artifact failed an integrity check") for n, k in runtime
        ]
        return report

    clf = ArtifactClassifier(directory, target=settings.target, verify=False)  # `files` just hashed them
    report.target, report.providers = clf.target.name, list(clf.session.get_providers())
    parity = _timed(lambda: _parity(clf))
    report.results.append(parity)
    if parity.passed and "text_model" in clf.manifest:
        parity = _timed(lambda: _text_parity(clf))
        report.results.append(parity)
    if not parity.passed:
        skipped = [(n, k) for n, k in runtime if n != "parity"]
        report.results += [CheckResult(n, k, None, "skipped: the artifact failed the parity check") for n, k in skipped]
        return report

    measured = _measure(clf, rows, settings)
    if rows is not None:
        report.results.append(_accuracy_gate(measured, settings))
    report.results += _latency_gates(measured, settings)
    if baseline is not None:
        base_clf = ArtifactClassifier(baseline, target=settings.target)
        base_measured = _measure(base_clf, rows, settings)
        report.results += _baseline_gates(measured, base_measured, clf.manifest, base_clf.manifest, settings)
    if settings.min_margin_over_baseline is not None:
        report.results.append(_margin_over_tfidf(clf.manifest, settings.min_margin_over_baseline))
    return report


# --- integrity ------------------------------------------------------------------------------------


def integrity_checks(directory: Path) -> list[CheckResult]:
    """manifest, files, onnx_checker, signature, opset. Later ones are skipped when they cannot mean anything."""
    start = time.perf_counter()
    try:
        manifest = read_manifest(directory)
    except ArtifactError as e:
        rest = [CheckResult(n, INTEGRITY, None, "skipped: no readable manifest") for n in _AFTER_MANIFEST]
        return [CheckResult("manifest", INTEGRITY, False, str(e), seconds=time.perf_counter() - start), *rest]
    results = [
        CheckResult(
            "manifest",
            INTEGRITY,
            True,
            f"{MANIFEST} version {manifest['manifest_version']}, {len(manifest['labels'])} labels",
            seconds=time.perf_counter() - start,
        ),
        _timed(lambda: _files(directory, manifest)),
    ]
    if manifest.model_file.endswith(".ort"):  # `deploy --mobile`: onnx.checker cannot read the ORT format
        return results + [CheckResult(n, INTEGRITY, ok, detail) for n, ok, detail in _ort_format_checks(manifest)]
    checker = _timed(lambda: _onnx_checker(directory, manifest))
    results.append(checker)
    if not checker.passed:
        results += [
            CheckResult(n, INTEGRITY, None, "skipped: the ONNX file is not valid") for n in ("signature", "opset")
        ]
        return results
    graph = _load_graph(manifest.model_path)
    results.append(_timed(lambda: _signature(graph, manifest)))
    results.append(_timed(lambda: _opset(graph, manifest)))
    return results


_AFTER_MANIFEST = ("files", "onnx_checker", "signature", "opset")


def _ort_format_checks(manifest) -> list[tuple[str, bool, str]]:
    """`edgecut check` on an ORT-format model: (name, passed, detail) for loading it and its signature.

    onnx.checker cannot read the ORT format; ONNX Runtime loading it is the integrity check, and its inputs
    and output must be the manifest's.
    """
    import onnxruntime as ort

    name = manifest.model_file
    try:
        session = ort.InferenceSession(str(manifest.model_path), providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises its own Fail/InvalidGraph/... for a damaged flatbuffer
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        return [("ort_format", False, f"ONNX Runtime cannot load {name}: {first}")]
    declared = list(manifest["signature"].get("inputs", {}))
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    loaded = ("ort_format", True, f"{name} loads in ONNX Runtime {ort.__version__}")
    if inputs != declared or "logits" not in outputs:
        return [loaded, ("signature", False, f"inputs {inputs}, outputs {outputs}; the manifest says {declared}")]
    width = session.get_outputs()[outputs.index("logits")].shape[-1]
    if isinstance(width, int) and width != len(manifest["labels"]):
        return [loaded, ("signature", False, f"logits has {width} classes, the manifest {len(manifest['labels'])}")]
    return [loaded, ("signature", True, f"inputs {', '.join(inputs)}; output logits")]


def _timed(fn: Callable[[], CheckResult]) -> CheckResult:
    start = time.perf_counter()
    result = fn()
    return CheckResult(**{**asdict(result), "seconds": time.perf_counter() - start})


def _files(directory: Path, manifest: Manifest) -> CheckResult:
    listed = manifest.files
    if not listed:
        return CheckResult("files", INTEGRITY, False, "the manifest lists no files: re-export the artifact")
    problems = []
    for name, digest in listed.items():
        path = member(directory, name, "files entry")  # read_manifest already refused names outside
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif sha256_file(path) != digest:
            problems.append(f"{name} does not match its sha256 (changed after export)")
    for needed in (manifest.model_file, manifest.golden_file, TOKENIZER):
        if needed not in listed:
            problems.append(f"{needed} is not listed in the manifest's files")
    if problems:
        return CheckResult("files", INTEGRITY, False, "; ".join(problems))
    extra = sorted(
        p.relative_to(directory).as_posix()
        for p in directory.rglob("*")
        if p.is_file() and p.name != MANIFEST and p.relative_to(directory).as_posix() not in listed
    )
    note = f" ({len(extra)} unlisted file(s) ignored: {', '.join(extra[:5])})" if extra else ""
    return CheckResult("files", INTEGRITY, True, f"{len(listed)} files match their sha256{note}")


def _onnx_checker(directory: Path, manifest: Manifest) -> CheckResult:
    import onnx
    from google.protobuf.message import DecodeError

    name = manifest.model_file
    path = manifest.model_path
    if not path.is_file():
        return CheckResult("onnx_checker", INTEGRITY, False, f"{name} is missing")
    try:
        # By path, so external data (model.onnx.data) and models over 2 GB are checked too.
        onnx.checker.check_model(str(path), full_check=False)
    except onnx.checker.ValidationError as e:
        if "No Op registered for" not in str(e):
            return CheckResult("onnx_checker", INTEGRITY, False, f"{name}: {_first_line(e)}")
        return _check_with_ort_ops(path, name, e)
    except (DecodeError, OSError, ValueError) as e:
        return CheckResult("onnx_checker", INTEGRITY, False, f"{name}: {_first_line(e)}")
    return CheckResult("onnx_checker", INTEGRITY, True, f"{name} passes onnx.checker")


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def _check_with_ort_ops(path: Path, name: str, error: Exception) -> CheckResult:
    """onnx.checker again, with ONNX Runtime's own default-domain ops set aside.

    ORT's graph optimiser writes fused ops such as SimplifiedLayerNormalization into the default
    domain, where onnx.checker knows no schema for them. Every other node is still checked; the set-aside
    ops must be ones this ONNX Runtime registers (parity then runs them).
    """
    import onnx
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

    model = onnx.load(str(path), load_external_data=False)
    opset = {o.domain or "ai.onnx": o.version for o in model.opset_import}.get("ai.onnx", 0)
    default_domain = [n for n in model.graph.node if n.domain in ("", "ai.onnx")]
    unknown = sorted({n.op_type for n in default_domain if not onnx.defs.has(n.op_type, opset, "")})
    ort_ops = {s.name for s in ort_state.get_all_operator_schema() if s.domain in ("", "ai.onnx")}
    foreign = [op for op in unknown if op not in ort_ops]
    if foreign:  # name the op that is really unknown, not the first ORT op the checker met
        detail = f"{name}: unknown op(s) {', '.join(foreign)}: neither ONNX nor this ONNX Runtime defines them"
        return CheckResult("onnx_checker", INTEGRITY, False, detail)
    if not unknown:
        return CheckResult("onnx_checker", INTEGRITY, False, f"{name}: {_first_line(error)}")
    aside = "edgecut.ort_default_domain"  # a custom domain: the checker skips its nodes
    for node in default_domain:
        if node.op_type in unknown:
            node.domain = aside
    model.opset_import.append(onnx.helper.make_opsetid(aside, 1))
    try:
        onnx.checker.check_model(model, full_check=False)
    except onnx.checker.ValidationError as e:
        return CheckResult("onnx_checker", INTEGRITY, False, f"{name}: {_first_line(e)}")
    detail = f"{name} passes onnx.checker; ONNX Runtime ops in the default domain left to parity: {', '.join(unknown)}"
    return CheckResult("onnx_checker", INTEGRITY, True, detail)


def _load_graph(path: Path):
    import onnx

    return onnx.load(str(path), load_external_data=False)


def _dims(value_info) -> list[int | str | None]:
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in shape.dim]


def _signature(model, manifest: dict) -> CheckResult:
    sig = manifest["signature"]
    graph = model.graph
    problems = []
    for kind, declared, actual in (
        ("inputs", sig.get("inputs", {}), graph.input),
        ("outputs", sig.get("outputs", {}), graph.output),
    ):
        by_name = {v.name: v for v in actual}
        if list(by_name) != list(declared):
            problems.append(f"graph {kind} {list(by_name)} but the manifest says {list(declared)}")
            continue
        for name, dims in declared.items():
            got = _dims(by_name[name])
            if len(got) != len(dims):
                problems.append(f"{name} has rank {len(got)}, the manifest says {len(dims)}")
                continue
            for i, (want, have) in enumerate(zip(dims, got, strict=True)):
                if isinstance(want, int) and have != want:
                    problems.append(f"{name} dim {i} is {have}, the manifest says {want}")
                if isinstance(want, str) and isinstance(have, int):
                    problems.append(f"{name} dim {i} is fixed at {have}, the manifest says dynamic '{want}'")
            elem = _ONNX_TYPES.get(by_name[name].type.tensor_type.elem_type, "unknown")
            # Inputs: the manifest's dtype. Outputs: float logits (float16 where the target builds fp16 graphs).
            wanted = (sig.get("dtype", "int64"),) if kind == "inputs" else ("float32", "float16", "bfloat16")
            if elem not in wanted:
                problems.append(f"{name} is {elem}, expected {' or '.join(wanted)}")
    outputs = sig.get("outputs", {})
    if "logits" in outputs and outputs["logits"][-1] != len(manifest["labels"]):
        problems.append(
            f"logits has {outputs['logits'][-1]} classes but the manifest has {len(manifest['labels'])} labels"
        )
    if problems:
        return CheckResult("signature", INTEGRITY, False, "; ".join(problems))
    described = ", ".join(f"{n} [{', '.join(map(str, d))}]" for n, d in {**sig.get("inputs", {}), **outputs}.items())
    return CheckResult("signature", INTEGRITY, True, described)


def _opset(model, manifest: dict) -> CheckResult:
    versions = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    have = versions.get("ai.onnx")
    if have != manifest["opset"]:
        return CheckResult(
            "opset", INTEGRITY, False, f"the graph imports opset {have}, the manifest records {manifest['opset']}"
        )
    return CheckResult("opset", INTEGRITY, True, f"opset {have}")


# --- parity ---------------------------------------------------------------------------------------


def _parity(clf: ArtifactClassifier) -> CheckResult:
    recorded = clf.manifest.golden_atol
    # Another target than the recorded one (a CPU artifact checked on CUDA) gets that target's tolerance too.
    atol = recorded if clf.target.name == clf.manifest["target"]["name"] else max(recorded, clf.target.parity_atol)
    try:
        golden = read_golden(clf.manifest)
        got = clf.session.run(["logits"], golden.feed)[0]
    except ArtifactError as e:
        return CheckResult("parity", PARITY, False, str(e))
    except Exception as e:  # ORT refuses golden inputs the graph cannot take (ids beyond the vocabulary)
        return CheckResult("parity", PARITY, False, f"the golden prompts do not run: {_first_line(e)}")
    expected = golden.logits
    if got.shape != expected.shape:
        return CheckResult("parity", PARITY, False, f"logits shape {got.shape}, golden {expected.shape}")
    diff = float(np.abs(got - expected).max())
    flips = int((got.argmax(-1) != expected.argmax(-1)).sum())
    where = f"{len(expected)} golden prompts on {', '.join(clf.session.get_providers()[:1])}"
    passed = diff <= atol and flips == 0
    detail = f"max |Δlogit| {diff:.2g} (atol {atol:g}), {flips} argmax change(s) on {where}"
    return CheckResult("parity", PARITY, passed, detail, measured=diff, threshold=atol, unit="logit")


def _text_parity(clf: ArtifactClassifier) -> CheckResult:
    """model_text.onnx (raw text in) against the id graph: the same ids for the probe texts, the odd inputs
    (control characters, NUL, BOM, RTL marks, ZWJ emoji, combining accents, a 100 KB text) and the
    demonstrations, and logits within the recorded tolerance. A text holding a character the manifest records
    as divergent (NUL) may differ, and only such a text; one the manifest does not record fails the check."""
    from edgecut.graph.text_graph import ODD_PROBES, ODD_REFUSED, PROBES, compare_text_graph

    try:
        import onnxruntime_extensions  # noqa: F401
    except ImportError:
        fix = "pip install 'edgecut[text]' to check it"
        return CheckResult("text_parity", PARITY, None, f"the artifact has a raw-text graph; {fix}")
    record = clf.manifest["text_model"]
    path = member(clf.directory, record.get("file"), "text_model.file")
    recorded = tuple(record.get("divergent_characters") or ())
    texts = [*PROBES, *ODD_PROBES, *(d["text"] for d in clf.manifest["prompt"].get("demonstrations", []))]
    exact = [t for t in texts if not any(c in t for c in recorded)]
    try:
        got = compare_text_graph(clf.directory, path, exact)
        odd = compare_text_graph(clf.directory, path, [t for t in texts if t not in exact]) if recorded else None
    except Exception as e:  # a damaged graph or one this ONNX Runtime cannot load
        return CheckResult("text_parity", PARITY, False, f"{path.name} does not run: {_first_line(e)}")
    refused = [_refuses(clf, json.loads(t)) for t in ODD_REFUSED]
    atol = clf.manifest.golden_atol
    passed = got.ids_equal == got.texts and got.max_abs_logit_diff <= atol and all(refused)
    detail = (
        f"{path.name}: ids equal on {got.ids_equal} of {got.texts} probe texts (odd inputs included), "
        f"max |Δlogit| {got.max_abs_logit_diff:.2g} against the id graph (atol {atol:g})"
    )
    if odd is not None:
        shown = ", ".join(f"U+{ord(c):04X}" for c in recorded)
        detail += f"; {odd.texts - odd.ids_equal} of {odd.texts} texts holding {shown} differ, as the manifest records"
    if not all(refused):
        detail += "; a text with a lone surrogate was not refused"
    return CheckResult("text_parity", PARITY, passed, detail, got.max_abs_logit_diff, atol, "logit")


def _refuses(clf: ArtifactClassifier, text: str) -> bool:
    """Whether the id path refuses `text` with a one-line error (not a crash, not an answer)."""
    try:
        clf.encode(text)
    except EdgecutError:
        return True
    return False


# --- gates ----------------------------------------------------------------------------------------


def _read_rows(settings: CheckSettings) -> list[tuple[str, str]]:
    from edgecut.model.data import read_rows

    return read_rows(str(settings.data), settings.text_column, settings.label_column)


def _baseline(path: Path) -> Path:
    """The baseline must itself be intact, or the comparison means nothing: wrong input, exit 2."""
    path = Path(path)
    if not path.is_dir():
        raise ArtifactError(f"--baseline {path} is not a directory: give the previous artifact's directory")
    for r in integrity_checks(path):
        if r.passed is False:
            raise ArtifactError(f"--baseline {path} is broken ({r.name}: {r.detail}): run `edgecut check {path}`")
    return path


def _check_labels(rows: list[tuple[str, str]], labels: list[str], settings: CheckSettings) -> None:
    unknown = sorted({label for _, label in rows} - set(labels))
    if unknown:
        raise DataError(
            f"labels in {settings.data} that the artifact does not have: {', '.join(unknown[:10])} "
            f"(it has {', '.join(labels)}): fix the file or --label-column"
        )


@dataclass(frozen=True)
class _Measured:
    accuracy: float | None
    rows: int
    truncated: int
    p50_ms: float
    p90_ms: float
    latency_source: str
    accuracy_seconds: float = 0.0
    latency_seconds: float = 0.0


def _measure(clf: ArtifactClassifier, rows: list[tuple[str, str]] | None, settings: CheckSettings) -> _Measured:
    """Accuracy on the labelled rows (if any) and batch-1 latency, both with this artifact's own prompt."""
    accuracy, truncated = None, 0
    start = time.perf_counter()
    if rows is not None:
        _check_labels(rows, clf.labels, settings)
        index = {label: i for i, label in enumerate(clf.labels)}
        encoded = [clf.encode(text) for text, _ in rows]
        truncated = sum(cut for _, cut in encoded)
        sequences = [ids for ids, _ in encoded]
        logits = run_logits(clf.session, sequences, clf.pad_id)
        accuracy = accuracy_of(logits, [index[label] for _, label in rows])
        latency_rows, source = sequences[:LATENCY_ROWS], f"{min(len(sequences), LATENCY_ROWS)} prompts of --data"
    else:
        latency_rows = read_golden(clf.manifest).sequences()
        source = f"{len(latency_rows)} golden prompts"
    accuracy_seconds = time.perf_counter() - start
    start = time.perf_counter()
    # As the export measured it: with I/O binding where the target serves that way (GPU).
    io_binding = bool(getattr(clf.target, "io_binding", False))
    lat = measure_latency(
        clf.session, latency_rows, clf.pad_id, batch_size=1, runs=settings.latency_runs, io_binding=io_binding
    )
    return _Measured(
        accuracy,
        len(rows or []),
        truncated,
        lat.p50_ms,
        lat.p90_ms,
        source,
        accuracy_seconds if rows is not None else 0.0,
        time.perf_counter() - start,
    )


def _accuracy_gate(m: _Measured, settings: CheckSettings) -> CheckResult:
    cut = f", {m.truncated} cut to max_length" if m.truncated else ""
    where = f"on {m.rows} rows of {settings.data}{cut}"
    if settings.min_accuracy is None:
        detail = f"{m.accuracy:.1%} {where}; no threshold (--min-accuracy)"
        return CheckResult("accuracy", GATE, True, detail, m.accuracy, None, "fraction", m.accuracy_seconds)
    passed = m.accuracy >= settings.min_accuracy
    detail = f"{m.accuracy:.1%} {'≥' if passed else '<'} {settings.min_accuracy:.1%} {where}"
    return CheckResult(
        "accuracy", GATE, passed, detail, m.accuracy, settings.min_accuracy, "fraction", m.accuracy_seconds
    )


def _latency_gates(m: _Measured, settings: CheckSettings) -> list[CheckResult]:
    out = []
    for name, value, limit, flag, seconds in (  # one measurement gives both; its time goes to p50
        ("latency_p50", m.p50_ms, settings.max_latency_ms, "--max-latency-ms", m.latency_seconds),
        ("latency_p90", m.p90_ms, settings.max_p90_ms, "--max-p90-ms", 0.0),
    ):
        where = f"batch 1, {settings.latency_runs} runs over {m.latency_source}"
        if limit is None:
            detail = f"{value:.3g} ms ({where}); no threshold ({flag})"
            out.append(CheckResult(name, GATE, True, detail, value, None, "ms", seconds))
        else:
            passed = value <= limit
            detail = f"{value:.3g} ms {'≤' if passed else '>'} {limit:g} ms ({where})"
            out.append(CheckResult(name, GATE, passed, detail, value, limit, "ms", seconds))
    return out


def _baseline_gates(
    new: _Measured, base: _Measured, manifest: dict, base_manifest: dict, settings: CheckSettings
) -> list[CheckResult]:
    margin = settings.accuracy_margin / 100
    if new.accuracy is not None:
        acc_new, acc_base, how = new.accuracy, base.accuracy, f"measured on {settings.data}"
    else:  # no --data: the accuracies each export recorded on its own test split
        acc_new = manifest.get("metrics", {}).get("onnx_accuracy")
        acc_base = base_manifest.get("metrics", {}).get("onnx_accuracy")
        how = "recorded at export (pass --data to measure both on the same file)"
    if acc_new is None or acc_base is None:
        accuracy = CheckResult("baseline_accuracy", GATE, True, "no accuracy to compare: pass --data")
    else:
        floor = acc_base - margin
        passed = acc_new >= floor - 1e-12
        detail = (
            f"{acc_new:.1%} vs baseline {acc_base:.1%}, {how}; may drop at most "
            f"{settings.accuracy_margin:g} percentage points (--accuracy-margin)"
        )
        accuracy = CheckResult(
            "baseline_accuracy", GATE, passed, detail, acc_new, floor, "fraction", base.accuracy_seconds
        )
    out = [accuracy]
    factor = 1 + settings.latency_margin / 100
    for name, value, ref in (
        ("baseline_latency_p50", new.p50_ms, base.p50_ms),
        ("baseline_latency_p90", new.p90_ms, base.p90_ms),
    ):
        limit = ref * factor
        detail = (
            f"{value:.3g} ms vs baseline {ref:.3g} ms, both measured here at batch 1; may be at most "
            f"{settings.latency_margin:g} % slower (--latency-margin)"
        )
        seconds = base.latency_seconds if name.endswith("p50") else 0.0
        out.append(CheckResult(name, GATE, value <= limit, detail, value, limit, "ms", seconds))
    return out


def _margin_over_tfidf(manifest, points: float) -> CheckResult:
    """The exported model against the TF-IDF + logistic regression baseline fitted on its own training rows."""
    model = manifest.get("metrics", {}).get("onnx_accuracy")
    floor = (manifest.get("baseline") or {}).get("accuracy")
    if model is None or floor is None:
        detail = (
            "the artifact records no TF-IDF baseline (exported with --baseline none, or before edgecut recorded "
            "one): re-export it without --baseline none"
        )
        return CheckResult("margin_over_tfidf", GATE, False, detail)
    margin = (model - floor) * 100
    passed = margin >= points - 1e-9
    detail = (
        f"{model:.1%} vs TF-IDF + logistic regression {floor:.1%} on the export's test rows: "
        f"{margin:+.1f} points ({'≥' if passed else '<'} {points:g}, --min-margin-over-baseline)"
    )
    return CheckResult("margin_over_tfidf", GATE, passed, detail, margin, points, "points")
