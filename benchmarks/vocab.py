"""What trimming the vocabulary (`--vocab`) buys on SmolLM2: ids kept, test coverage, graph sizes, step time.

For each data set and each N in --layers, with the default `cpu` recipe's prompts (max_length 128, no
demonstrations) and seed 0 splits:
- distinct ids in the training prompts and the share of test tokens kept, for `task` and fixed sizes;
- fp32 and int8 graph sizes of the untrimmed and trimmed classifier (exported without training: the size
  does not depend on the weights' values). int8 is the static per-channel QDQ graph targets ship first,
  and the embedding-only int8 graph (the last int8 candidate);
- per fallback, the test accuracy of a logistic-regression probe on the frozen (untrained) body's last
  hidden state: a cheap first look at what each fallback costs the test prompts holding dropped ids
  (a 1-layer body's zero-shot accuracy is at chance, so it cannot tell); not a substitute for --train;
- seconds per AdamW step at the recipe's batch (32), untrimmed and trimmed measured interleaved in this
  one process on the same batches.
With --train, also the accuracy after the recipe's fine-tuning (edgecut.model.finetune.finetune) per variant and
seed: the accuracy cost of each trim (hours on 2 CPU cores).

    .venv/bin/python benchmarks/vocab.py --json benchmarks/results/vocab.json
    .venv/bin/python benchmarks/vocab.py --train --layers 1,2 --json benchmarks/results/vocab-train.json
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import random
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from edgecut.graph.exporter import export_onnx, torch_logits
from edgecut.graph.quantize import cpu_has_vnni, graph_bytes, to_int8
from edgecut.graph.validate import accuracy
from edgecut.model.cut import cut_model
from edgecut.model.data import DataSpec, encode_examples, load_dataset
from edgecut.model.finetune import finetune, get_recipe
from edgecut.model.load import load_model
from edgecut.model.prompt import PromptFormat
from edgecut.model.prune import count_parameters
from edgecut.model.vocab import FALLBACKS, always_kept_ids, coverage, parse_vocab, task_token_ids, trim_vocabulary
from edgecut.runtime import pad_batch
from edgecut.targets import Int8Settings

MODEL = "smollm2-135m"
INT8 = {
    "int8_static_pc": Int8Settings(mode="static", per_channel=True, calibration_size=128),
    "int8_embedding": Int8Settings(mode="weights", per_channel=True),
}


def _variants(sizes: list[int]) -> list[str]:
    return ["all", "task", *[str(n) for n in sizes]]


def _fallbacks(keep: list[int] | None, variant: str = "task", size_fallbacks=FALLBACKS) -> tuple[str, ...]:
    """The fallbacks measured for a variant: `task` gets every one, fixed sizes those of --size-fallbacks."""
    if keep is None:
        return ("none",)
    return FALLBACKS if variant == "task" else tuple(size_fallbacks)


def _trimmed(clf, keep: list[int] | None, fallback: str):
    """A copy of `clf`, trimmed to `keep` (None: untouched), and the trim record (None when untouched)."""
    out = copy.deepcopy(clf)
    start = time.perf_counter()
    trim = trim_vocabulary(out, keep, fallback) if keep is not None else None
    return out, trim, time.perf_counter() - start


def _features(clf, sequences: list[list[int]], pad: int, batch: int = 64) -> np.ndarray:
    """The body's hidden state at each prompt's last token: what the classification head reads."""
    out = []
    with torch.no_grad():
        for start in range(0, len(sequences), batch):
            feed = {k: torch.from_numpy(v) for k, v in pad_batch(sequences[start : start + batch], pad).items()}
            hidden = clf.base_model(**feed).last_hidden_state
            last = feed["attention_mask"].sum(1) - 1  # right padding
            out.append(hidden[torch.arange(len(last)), last].float().numpy())
    return np.concatenate(out)


def _probe(clf, train: list[list[int]], train_labels, test: list[list[int]], test_labels, pad: int) -> float:
    """Test accuracy of a logistic regression on the frozen features: what the fallback rows cost the
    prompts that hold dropped ids, without fine-tuning (which --train measures)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=0))
    probe.fit(_features(clf, train, pad), train_labels)
    return float(probe.score(_features(clf, test, pad), test_labels))


def _sizes(clf, sample, calibration, tmp: Path, name: str) -> dict:
    fp32 = export_onnx(clf, sample, tmp / f"{name}.onnx").path
    row = {"fp32_bytes": graph_bytes(fp32)}
    for key, settings in INT8.items():
        row[f"{key}_bytes"] = graph_bytes(to_int8(fp32, tmp / f"{name}-{key}.onnx", settings, calibration).path)
    return row


def _step_seconds(models: dict, batches: list[dict], lr: float) -> dict[str, float]:
    """Median seconds of one AdamW step (forward, backward, update) per model, the models taking turns."""
    optimizers = {k: torch.optim.AdamW(m.parameters(), lr=lr, weight_decay=0.0) for k, m in models.items()}
    times: dict[str, list[float]] = {k: [] for k in models}
    for m in models.values():
        m.train()
    for i, batch in enumerate(batches):
        for key, model in models.items():
            start = time.perf_counter()
            model(**batch).loss.backward()
            optimizers[key].step()
            optimizers[key].zero_grad(set_to_none=True)
            if i > 0:  # the first step allocates AdamW's moments
                times[key].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def bench(data: str, layers: int, args) -> dict:
    recipe = get_recipe("cpu", per_class_cap=args.per_class_cap)
    ds = load_dataset(DataSpec(source=data, seed=0, per_class_cap=recipe.per_class_cap, demonstrations=False))
    loaded = load_model(MODEL)
    tok = loaded.tokenizer
    clf = cut_model(loaded, layers, ds.labels, ds.label_words, pooling="last").classifier
    pad = tok.pad_token_id  # the cut sets one when the tokenizer has none
    prompt = PromptFormat(ds.template, (), recipe.max_length)
    train, _ = encode_examples(tok, prompt, ds.train)
    test, _ = encode_examples(tok, prompt, ds.test)
    train_ids, test_ids = [f["input_ids"] for f in train], [f["input_ids"] for f in test]
    labels = [f["labels"] for f in test]
    always = always_kept_ids(tok, prompt, ds.label_words)
    vocab_size = clf.get_input_embeddings().weight.shape[0]
    result = {
        "data": data,
        "layers": layers,
        "train_rows": len(train),
        "test_rows": len(test),
        "vocab_size": vocab_size,
        "always_kept": len(always),
        "distinct_train_ids": len({i for s in train_ids for i in s}),
        "variants": {},
    }
    keeps: dict[str, list[int] | None] = {"all": None}
    same_as: dict[str, str] = {}  # a fixed size above the distinct ids keeps exactly what `task` keeps
    for variant in _variants(args.sizes)[1:]:
        keep = task_token_ids(train_ids, parse_vocab(variant), always)
        earlier = [v for v, k in keeps.items() if k == keep]
        if earlier:
            same_as[variant] = earlier[0]
        else:
            keeps[variant] = keep
    # The splits come grouped by class: sample the probe's rows, never slice.
    picked = random.Random(0).sample(range(len(train)), min(args.probe_rows, len(train)))
    probe_train, probe_labels = [train_ids[i] for i in picked], [train[i]["labels"] for i in picked]
    sample = pad_batch(test_ids[:2], pad)
    calibration = [pad_batch([s], pad) for s in train_ids[:128]]
    with tempfile.TemporaryDirectory(prefix="edgecut-vocab-") as tmp:
        for variant, keep in keeps.items():
            kept = set(keep) if keep is not None else set(range(vocab_size))
            row = {
                "kept": len(kept),
                "test_coverage": coverage(test_ids, kept),
                "test_prompts_with_dropped_ids": sum(any(i not in kept for i in s) for s in test_ids),
                "fallbacks": {},
            }
            result["variants"][variant] = row
            if args.accuracy_only:
                continue
            for fallback in _fallbacks(keep):
                trimmed, trim, seconds = _trimmed(clf, keep, fallback)
                probe = _probe(trimmed, probe_train, probe_labels, test_ids, labels, pad)
                row["fallbacks"][fallback] = {"trim_seconds": seconds, "probe_accuracy": probe}
                row["parameters"] = count_parameters(trimmed)
                if fallback != "nearest":  # sizes: the mean fallback's extra row is the only difference
                    row |= _sizes(trimmed, sample, calibration, Path(tmp), variant)
            print(f"  {data} N={layers} --vocab {variant}: sizes done", flush=True)
    if not args.accuracy_only:
        _measure_steps(result, keeps, clf, train, pad, recipe, args.steps)
        _measure_latency(result, keeps, clf, test_ids, pad, sample, calibration, args.latency_rounds)
    if args.train:
        _train(result, keeps, clf, tok, prompt, ds, train, test_ids, labels, pad, recipe, args)
    for variant, other in same_as.items():
        result["variants"][variant] = {"same_as": other}
    return result


def _measure_steps(result: dict, keeps: dict, clf, train, pad: int, recipe, steps: int) -> None:
    """Seconds per AdamW step of every variant, the models taking turns on the same batches."""
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0)).tolist()
    batches = []
    for b in range(steps + 1):
        rows = [train[i] for i in order[b * recipe.batch_size : (b + 1) * recipe.batch_size]]
        feed = {k: torch.from_numpy(v) for k, v in pad_batch([r["input_ids"] for r in rows], pad).items()}
        batches.append(feed | {"labels": torch.tensor([r["labels"] for r in rows])})
    models = {v: _trimmed(clf, keep, "mean")[0] for v, keep in keeps.items()}
    for variant, seconds in _step_seconds(models, batches, recipe.learning_rate).items():
        result["variants"][variant]["step_seconds"] = seconds


def _measure_latency(result: dict, keeps: dict, clf, test_ids, pad: int, sample, calibration, rounds: int) -> None:
    """Median ms per text (batch 1, ORT CPU) of each variant's fp32 and static int8 graph. Interleaved: every
    round runs every graph on the same prompts, so the machine's load falls on all variants alike."""
    prompts = [pad_batch([s], pad) for s in test_ids[:64]]
    sessions = {}
    with tempfile.TemporaryDirectory(prefix="edgecut-vocab-latency-") as tmp:
        for variant, keep in keeps.items():
            model = _trimmed(clf, keep, "nearest")[0]
            fp32 = export_onnx(model, sample, Path(tmp) / f"{variant}.onnx").path
            int8 = to_int8(fp32, Path(tmp) / f"{variant}-int8.onnx", INT8["int8_static_pc"], calibration).path
            for precision, path in (("fp32", fp32), ("int8", int8)):
                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = torch.get_num_threads()
                sessions[variant, precision] = onnxruntime.InferenceSession(
                    str(path), options, providers=["CPUExecutionProvider"]
                )
        times: dict = {key: [] for key in sessions}
        for _ in range(rounds):
            for key, session in sessions.items():
                for feed in prompts:
                    start = time.perf_counter()
                    session.run(None, feed)
                    times[key].append(time.perf_counter() - start)
    for (variant, precision), values in times.items():
        result["variants"][variant][f"{precision}_ms"] = 1000 * statistics.median(values)


def _train(result: dict, keeps: dict, clf, tok, prompt, ds, train, test_ids, labels, pad: int, recipe, args) -> None:
    """Fine-tune every variant (each fallback) at every seed with the recipe: the torch model's test accuracy."""
    val, _ = encode_examples(tok, prompt, ds.validation)
    for seed in args.seeds:
        rcp = replace(recipe, seed=seed)
        for variant, keep in keeps.items():
            for fallback in _fallbacks(keep, variant, args.size_fallbacks):
                model, _, _ = _trimmed(clf, keep, fallback)
                torch.manual_seed(seed)
                tuned = finetune(model, tok, train, val, rcp, show_progress=False)
                acc = accuracy(torch_logits(tuned.model, test_ids, pad), labels)
                runs = result["variants"][variant]["fallbacks"].setdefault(fallback, {}).setdefault("trained", [])
                runs.append({"seed": seed, "accuracy": acc, "seconds": tuned.seconds, "steps": tuned.steps})
                name = f"{result['data']} N={result['layers']} --vocab {variant} ({fallback}) seed {seed}"
                print(f"  {name}: {acc:.1%} in {tuned.seconds:.0f} s", flush=True)


def _mean_sd(runs: list[dict]) -> str:
    values = [100 * r["accuracy"] for r in runs]
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f}±{sd:.1f}"


def _print(results: list[dict]) -> None:
    def cell(v: dict, key: str, scale: float = 1.0, fmt: str = ".1f") -> str:
        return format(v[key] * scale, fmt) if key in v else "-"

    head = (
        f"{'data':16} {'N':>2} {'vocab':>6} {'kept':>6} {'test cov':>8} {'fp32 MB':>8} {'int8 MB':>8} "
        f"{'s/step':>7} {'fp32 ms':>7} {'int8 ms':>7}  trained accuracy % (mean±sd) / probe per fallback"
    )
    print(head)
    for r in results:
        for variant, v in r["variants"].items():
            if "same_as" in v:
                print(f"{r['data']:16} {r['layers']:2d} {variant:>6}  keeps what --vocab {v['same_as']} keeps")
                continue
            per_fallback = []
            for name, f in v["fallbacks"].items():
                trained = _mean_sd(f["trained"]) if f.get("trained") else "-"
                probe = f"{f['probe_accuracy']:.1%}" if "probe_accuracy" in f else "-"
                per_fallback.append(f"{name}: {trained} / {probe}")
            print(
                f"{r['data']:16} {r['layers']:2d} {variant:>6} {v['kept']:6d} {v['test_coverage']:8.1%} "
                f"{cell(v, 'fp32_bytes', 1e-6):>8} {cell(v, 'int8_static_pc_bytes', 1e-6):>8} "
                f"{cell(v, 'step_seconds', 1, '.3f'):>7} {cell(v, 'fp32_ms', 1, '.2f'):>7} "
                f"{cell(v, 'int8_ms', 1, '.2f'):>7}  {'; '.join(per_fallback)}"
            )
    print("probe: test accuracy of a logistic regression on the untrained body's last hidden state")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="rotten-tomatoes,bbc-news")
    parser.add_argument("--layers", default="1")
    parser.add_argument("--sizes", default="8000,12000", help="fixed --vocab sizes to measure ('' for none)")
    parser.add_argument("--per-class-cap", type=int, default=None, help="training rows per class (the recipe's)")
    parser.add_argument("--steps", type=int, default=6, help="timed AdamW steps per variant (after one warm-up)")
    parser.add_argument("--probe-rows", type=int, default=4000, help="training prompts the probe is fit on")
    parser.add_argument("--train", action="store_true", help="also fine-tune every variant (hours on a CPU)")
    parser.add_argument("--seeds", default="0,42,421", help="seeds for --train")
    parser.add_argument("--size-fallbacks", default="mean,nearest", help="fallbacks --train measures for fixed sizes")
    parser.add_argument(
        "--accuracy-only", action="store_true", help="with --train: skip probe, sizes, step time and latency"
    )
    parser.add_argument("--latency-rounds", type=int, default=5, help="interleaved rounds of 64 prompts per graph")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/vocab.json"))
    args = parser.parse_args()
    args.sizes = [int(x) for x in args.sizes.split(",") if x]
    args.seeds = [int(x) for x in args.seeds.split(",") if x]
    args.size_fallbacks = [x for x in args.size_fallbacks.split(",") if x]
    results = []
    for data in args.data.split(","):
        for n in [int(x) for x in args.layers.split(",")]:
            results.append(bench(data, n, args))
    machine = {
        "cpu": platform.processor() or platform.machine(),
        "vnni": cpu_has_vnni(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
    }
    print(f"\n{MODEL}, cpu recipe prompts (max_length 128), seed-0 splits; {machine}")
    _print(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    settings = vars(args) | {"json": str(args.json)}
    args.json.write_text(json.dumps({"machine": machine, "args": settings, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
