"""`edgecut deploy --mobile`: the artifact for ONNX Runtime Mobile (Android, iOS), in ORT format.

    DIR/
    ├── model.ort                     # the graph, converted by onnxruntime.tools.convert_onnx_models_to_ort
    ├── required_operators.config     # the operators a minimal ONNX Runtime build must keep to run it
    ├── tokenizer.json, classifier.json (labels, prompt, pad id, input/output names)
    ├── golden.npz, edgecut.json      # so `edgecut check DIR` loads model.ort and compares its logits
    └── README.md                     # how an Android or iOS app loads it

The conversion uses ORT's "Runtime" optimization style: basic optimizations are applied now, the others
are saved and replayed on the phone (session option `session.enable_saved_runtime_optimizations`), so the
platform-specific fusions are the phone's own; the operator config ORT writes for this style covers the
graph with and without that replay. Torch-free: onnxruntime, onnx and the standard library.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from edgecut import __version__
from edgecut.errors import ArtifactError, EdgecutError, OutputExistsError

MODEL = "model.ort"
OPERATORS = "required_operators.config"
CLASSIFIER = "classifier.json"
README = "README.md"
README_FIRST_LINE = "# edgecut mobile bundle"


@dataclass(frozen=True)
class MobileBundle:
    path: Path
    operators: dict[str, list[str]]  # "domain;opset" -> op types, as in the config
    model_bytes: int

    @property
    def operator_count(self) -> int:
        return sum(len(ops) for ops in self.operators.values())


def read_operator_config(path: Path) -> dict[str, list[str]]:
    """A required_operators.config as {"domain;opset": [ops]} (comments and blank lines skipped)."""
    out: dict[str, list[str]] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        domain, opset, ops = line.split(";", 2)
        out.setdefault(f"{domain};{opset}", []).extend(o for o in ops.split(",") if o)
    return out


def graph_op_types(model) -> set[tuple[str, str]]:
    """(domain, op type) of every node of an onnx.ModelProto, nested graphs (If, Loop, Scan) and functions too."""
    import onnx

    found: set[tuple[str, str]] = set()

    def walk(graph) -> None:
        for node in graph.node:
            found.add((node.domain or "ai.onnx", node.op_type))
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    walk(attr.g)
                elif attr.type == onnx.AttributeProto.GRAPHS:
                    for g in attr.graphs:
                        walk(g)

    walk(model.graph)
    for function in model.functions:
        walk(function)
    return found


def convert_to_ort(onnx_model: Path, work: Path) -> tuple[Path, Path]:
    """(model.ort, its operator config) converted from `onnx_model` inside the empty directory `work`."""
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    # The converter prints its progress and a warning about replay (which the README explains): kept quiet,
    # and shown only if it fails.
    said = io.StringIO()
    logger = logging.getLogger("ort_format_model.utils")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
            convert_onnx_models_to_ort(onnx_model, work / "out", [OptimizationStyle.Runtime], target_platform="arm")
    except Exception as e:
        last = (said.getvalue().strip().splitlines() or [str(e)])[-1]
        raise ArtifactError(f"ONNX Runtime cannot convert {onnx_model.name} to ORT format ({last})") from e
    finally:
        logger.setLevel(level)
    models = sorted((work / "out").glob("*.ort"))
    configs = sorted((work / "out").glob("*.config"))
    if len(models) != 1 or len(configs) != 1:
        raise EdgecutError(
            f"ONNX Runtime's converter wrote {len(models)} models and {len(configs)} configs, not 1 each"
        )
    return models[0], configs[0]


def deploy_mobile(artifact: str | Path, out: str | Path, force: bool = False) -> MobileBundle:
    """Check the artifact, convert its graph to ORT format and write the bundle.

    Raises:
        ArtifactError: the artifact fails an integrity check, or the converted graph needs an operator the
            config does not list.
        OutputExistsError: DIR exists (without force, or it is not a bundle edgecut wrote).
    """
    import onnx

    from edgecut.artifacts.artifact import check_destination, file_starts_with, staging
    from edgecut.artifacts.check import integrity_checks
    from edgecut.artifacts.manifest import TOKENIZER, read_manifest, write_manifest

    artifact, out = Path(artifact), Path(out)
    manifest = read_manifest(artifact)
    if manifest.model_file.endswith(".ort"):
        raise ArtifactError(f"{artifact} is already an ORT-format bundle: give the artifact `edgecut export` wrote")
    for r in integrity_checks(artifact):
        if r.passed is False:
            raise ArtifactError(f"{artifact} is broken ({r.name}: {r.detail}): run `edgecut check {artifact}`")
    destination = dict(protected=[artifact], is_replaceable=file_starts_with(README, README_FIRST_LINE))
    if out.exists() and not force:
        raise OutputExistsError(f"{out} already exists: choose another directory or pass --force to replace it")
    check_destination(out, force, **destination)

    source_ops = graph_op_types(onnx.load(str(manifest.model_path), load_external_data=False))
    with staging(out, force, **destination) as tmp:
        work = tmp / ".convert"
        work.mkdir()
        # The converter reads external data next to the model: copy the model and its data files as named.
        for name in manifest.files:
            if name == manifest.model_file or name.startswith(manifest.model_file + ".") or name.endswith(".data"):
                (work / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(artifact / name, work / name)
        model, config = convert_to_ort(work / manifest.model_file, work)
        shutil.move(model, tmp / MODEL)
        # The converter's header names its temporary paths; the operator lines are kept as written.
        lines = [line for line in config.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
        header = (
            f"# The operators of {MODEL}, with and without its saved runtime optimizations, as written by\n"
            "# onnxruntime.tools.convert_onnx_models_to_ort (Runtime style): for --include_ops_by_config.\n"
        )
        (tmp / OPERATORS).write_text(header + "\n".join(lines).strip() + "\n", encoding="utf-8")
        shutil.rmtree(work)
        operators = read_operator_config(tmp / OPERATORS)
        listed = {(k.split(";")[0], op) for k, ops in operators.items() for op in ops}
        missing = sorted(f"{d}:{op}" for d, op in source_ops - listed)
        if missing:  # a minimal build from this config could not run the graph
            raise ArtifactError(f"{OPERATORS} lacks {', '.join(missing)} of the graph: report this as a bug")
        shutil.copy2(artifact / TOKENIZER, tmp / TOKENIZER)
        shutil.copy2(manifest.golden_path, tmp / manifest.golden_file)
        classifier = {
            "labels": manifest["labels"],
            "prompt": manifest["prompt"],
            "pad_token_id": manifest["pad_token_id"],
            "inputs": list(manifest["signature"].get("inputs", {})),
            "output": "logits",
            "model": MODEL,
            "tokenizer": TOKENIZER,
        }
        (tmp / CLASSIFIER).write_text(json.dumps(classifier, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        count = sum(len(v) for v in operators.values())
        (tmp / README).write_text(_readme(manifest, count), encoding="utf-8")
        record = {k: v for k, v in manifest.record.items() if k not in ("manifest_version", "created", "files")}
        record["model_file"] = MODEL
        record["mobile"] = {
            "written_by": f"edgecut {__version__} deploy --mobile",
            "source_artifact": str(artifact.resolve()),
            "source_model_file": manifest.model_file,
            "optimization_style": "Runtime",
            "target_platform": "arm",
            "operators": count,
        }
        write_manifest(tmp, record)
    return MobileBundle(out, operators, (out / MODEL).stat().st_size)


def _readme(manifest, operators: int) -> str:
    labels = ", ".join(manifest["labels"])
    return f"""{README_FIRST_LINE}

Written by `edgecut deploy --mobile` (edgecut {__version__}) for ONNX Runtime Mobile. Labels: {labels}.

| file | what |
|---|---|
| `{MODEL}` | the classifier in ORT format (Runtime optimization style) |
| `{OPERATORS}` | the {operators} operators a reduced-operator ONNX Runtime build needs for it |
| `tokenizer.json` | the tokenizer (Hugging Face `tokenizers` format) |
| `{CLASSIFIER}` | labels, prompt (template, demonstrations, max_length), pad id, input and output names |
| `golden.npz`, `edgecut.json` | reference inputs and logits: `edgecut check DIR` runs `{MODEL}` against them |

## Loading the model

The prebuilt packages below are full builds and load `{MODEL}` as it is. For a smaller app, build ONNX
Runtime from source with `--minimal_build --include_ops_by_config {OPERATORS}` (ONNX Runtime's "custom
build" guide); that build keeps only these operators' kernels.

Android (Gradle: `implementation 'com.microsoft.onnxruntime:onnxruntime-android:<version>'`):

```kotlin
val env = OrtEnvironment.getEnvironment()
val options = OrtSession.SessionOptions()
options.addConfigEntry("session.enable_saved_runtime_optimizations", "1")
val session = env.createSession(modelBytes, options)  // modelBytes: {MODEL} read from assets
```

iOS (CocoaPods: `pod 'onnxruntime-objc'`):

```swift
let env = try ORTEnv(loggingLevel: .warning)
let options = try ORTSessionOptions()
try options.addConfigEntry(withKey: "session.enable_saved_runtime_optimizations", value: "1")
let session = try ORTSession(env: env, modelPath: path, sessionOptions: options)
```

Inputs: `input_ids` and `attention_mask`, int64, shape [batch, tokens]; output `logits` [batch, classes]:
the label is the argmax, in the order of `labels` in `{CLASSIFIER}`.

## Tokenizing is the app's job

ONNX Runtime Mobile runs the graph only. The app must turn a text into ids exactly as edgecut does: fill
the template with each demonstration and its label word, then the text with an empty label, join them with
the separator, encode with `tokenizer.json` (special tokens on), and when the prompt is longer than
`max_length` cut the *text* (never the demonstrations) by decoding a prefix of its own tokens and
re-encoding until it fits; see `PromptFormat.encode` in edgecut/model/prompt.py. Use a binding of Hugging Face
`tokenizers` (e.g. the Rust crate through JNI or Swift), or swift-transformers' tokenizer on iOS, and
compare its ids with `edgecut predict` on your texts before shipping. Attention mask: 1 for every token;
pad batches on the right with `pad_token_id`.
"""


def deploy_edge(artifact: Path, web: Path | None, mobile: Path | None, force: bool) -> list[str]:
    """`edgecut deploy --web DIR` or `--mobile DIR`: write it and return the lines to print."""
    if web is not None:
        from edgecut.serving.web import deploy_web

        site = deploy_web(artifact, web, force)
        probed = f"{site.probed} probe texts encode alike in Node and Python" if site.probed else "node missing: "
        probed += "" if site.probed else "the tokenizer was not probed"
        return [
            str(site.path),
            f"page: {site.weight / 1e6:.1f} MB in {len(site.files)} files; tokenizer {site.tokenizer}; {probed}",
            f"serve: python -m edgecut.serving.web {site.path}  (then open http://127.0.0.1:8000/)",
        ]
    if mobile is None:
        raise EdgecutError("give --web DIR or --mobile DIR")
    bundle = deploy_mobile(artifact, mobile, force)
    return [
        str(bundle.path),
        f"{MODEL}: {bundle.model_bytes / 1e6:.1f} MB; {bundle.operator_count} operators in {OPERATORS}",
        f"check: edgecut check {bundle.path}",
    ]
