"""fp16 of a full-depth artifact: ONNX Runtime's float16 converter as it writes the graph, against the graph
`to_fp16` ships (the converter's fp32 -> fp16 -> fp32 Cast pairs between kept-fp32 ops dropped).

On an H100 the 30-layer SmolLM2 teachers lost 17.6-30.8 points in fp16 (docs/gpus.md). This
reproduces the cause on ONNX Runtime's CPU provider, which runs these fp16 graphs too: per artifact, the
fp32 graph and both fp16 graphs on the first --rows validation prompts (argmax agreement with fp32,
largest logit difference, accuracy, and how many of the norms' x² values were inf in fp16).

    .venv/bin/python benchmarks/fp16_round_trips.py ART_DIR [ART_DIR ...]   # fp32 artifacts (--target cpu)

Writes benchmarks/results/fp16-round-trips.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from edgecut.artifacts.manifest import read_manifest
from edgecut.graph.quantize import drop_repeated_nodes, to_fp16
from edgecut.model.data import DataSpec, load_dataset
from edgecut.runtime import ArtifactClassifier, pad_batch
from edgecut.targets import load_target

ROOT = Path(__file__).resolve().parent.parent


def as_converted(fp32: Path, keep: tuple[str, ...]) -> onnx.ModelProto:
    """The converter's graph before edgecut's repairs (only its repeated nodes dropped, which ORT refuses)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True, op_block_list=list(keep))
    drop_repeated_nodes(model.graph)
    return model


def run(model: onnx.ModelProto, rows, pad_id: int) -> tuple[np.ndarray, int]:
    """Logits, and how many of the norms' x² values (Pow, kept fp32) were inf once cast to fp16."""
    producer = {out: node for node in model.graph.node for out in node.output}
    watched = [
        n.output[0]
        for n in model.graph.node
        if n.op_type == "Cast"
        and producer.get(n.input[0]) is not None
        and producer[n.input[0]].op_type == "Pow"
        and any(a.name == "to" and a.i == onnx.TensorProto.FLOAT16 for a in n.attribute)
    ]
    for name in watched:
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT16, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    logits, infs = [], 0
    for row in rows:
        out = session.run(["logits", *watched], pad_batch([row], pad_id))
        logits.append(out[0])
        infs += sum(int(np.isinf(v).sum()) for v in out[1:])
    return np.concatenate(logits), infs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("artifacts", nargs="+", type=Path)
    p.add_argument("--rows", type=int, default=200)
    p.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "fp16-round-trips.json")
    args = p.parse_args()
    keep = tuple(load_target("cuda").fp16.keep_fp32_ops)
    results = []
    print(f"{'artifact':28} {'graph':22} {'agree':>8} {'max|Δlogit|':>12} {'accuracy':>9} {'inf x²':>8}")
    for directory in args.artifacts:
        manifest = read_manifest(directory)
        clf = ArtifactClassifier(directory, target="cpu")
        settings = manifest["settings"]  # the export's validation split: its data, seed and test size
        spec = DataSpec(source=settings["data"], seed=settings["seed"], test_size=settings["test_size"])
        dataset = load_dataset(spec)
        examples = dataset.validation[: args.rows]
        rows = [clf.encode(ex.text)[0] for ex in examples]
        truth = np.array([ex.label for ex in examples])
        reference = np.concatenate([clf.session.run(["logits"], pad_batch([r], clf.pad_id))[0] for r in rows])
        with tempfile.TemporaryDirectory(prefix="edgecut-fp16-") as tmp:
            shipped = onnx.load(str(to_fp16(manifest.model_path, Path(tmp) / "fp16.onnx", keep).path))
            graphs = {
                "converter as written": as_converted(manifest.model_path, keep),
                "shipped (trips dropped)": shipped,
            }
            for name, model in graphs.items():
                logits, infs = run(model, rows, clf.pad_id)
                row = {
                    "artifact": str(directory),
                    "layers": len(manifest["layers"]["kept"]),
                    "graph": name,
                    "rows": len(rows),
                    "argmax_agreement": float((logits.argmax(-1) == reference.argmax(-1)).mean()),
                    "max_abs_logit_diff": float(np.abs(logits - reference).max()),
                    "accuracy_fp32": float((reference.argmax(-1) == truth).mean()),
                    "accuracy_fp16": float((logits.argmax(-1) == truth).mean()),
                    "inf_squares_in_fp16": infs,
                }
                results.append(row)
                print(
                    f"{directory.name:28} {name:22} {row['argmax_agreement']:8.1%} {row['max_abs_logit_diff']:12.4f} "
                    f"{row['accuracy_fp16']:9.1%} {infs:8d}   (fp32 {row['accuracy_fp32']:.1%})",
                    flush=True,
                )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"keep_fp32_ops": keep, "results": results}, indent=2))


if __name__ == "__main__":
    main()
