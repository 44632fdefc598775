"""What a shallow cut learns from its full-depth teacher: the distillation recipe measured in torch.

`edgecut export --teacher ART` reads the teacher's logits from its ONNX artifact; fine-tuning the full
model for that artifact takes hours per seed on a 2-core CPU and minutes on a GPU. This study runs the
same stages in one process instead (load once; per data set and seed: the full-depth teacher with the
default recipe, then N-layer students), so a lent GPU measures every variant in one call:

  plain            the `cpu` recipe, last-token pooling, no teacher (edgecut's default before this study)
  kd-A-T           logit distillation, loss A*CE + (1-A)*T^2*KL (`--distill-alpha A --distill-temperature T`)
  kdh-A-T          kd-A-T plus a cosine loss between the student's pooled last hidden state and the
                   teacher's (DistilBERT's L_cos; possible only when teacher and student are one model)
  mean, mean-kd-A-T   --pooling mean, without and with the teacher
  ep4, kd-A-T-ep4  4 epochs instead of the recipe's 2 (early stopping keeps the best epoch)
  mean-kd-A-T-augK mean-kd-A-T plus a transfer set: K noisy copies of every training text
                   (`benchmarks/transfer_set.py`), which the teacher labels and the student learns from the
                   soft targets alone (`--unlabeled`)

Every run uses edgecut's own stages (load_dataset, cut_model, finetune with
its distillation loss), the seed's split and the `cpu` recipe. The teacher's logits come from the torch
model, which its fp32 ONNX artifact reproduces within the parity tolerance. Accuracy is torch's on the
test split; validation accuracy picks nothing here except the teacher's learning rate (`--teacher-lrs`:
each is trained, the best on validation teaches). Writes one JSON line per run to --jsonl (resumable:
runs already there are skipped) and prints a mean ± sd table over seeds.

    python benchmarks/distill_recipe.py --data rotten-tomatoes --seeds 0 --layers 1,2 --jsonl out.jsonl
    python benchmarks/distill_recipe.py --report out.jsonl          # the table of what is there

benchmarks/results/distill-recipe.jsonl came from an NVIDIA H200 (benchmarks/results/RECORDS.md), one process per
rotten-tomatoes seed and one for bbc-news, all with --teacher-lrs 5e-4,1e-4 --layers 1,2 and the variants
plain,kd-0.5-2,kd-0-2,kdh-0.5-2,kd-0.5-4,mean,mean-kd-0.5-2,ep4,kd-0.5-2-ep4 (rotten-tomatoes) and
plain,kd-0.5-2,kd-0-2,mean,mean-kd-0.5-2 (bbc-news).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transfer_set import augment_texts  # noqa: E402

TRANSFER_COPIES = 4  # the copies every teacher labels when an aug variant is asked for

VARIANTS = {
    # name: (alpha, temperature, hidden weight, pooling, epochs, transfer-set copies); alpha None = no teacher
    "plain": (None, None, 0.0, "last", None, 0),
    "kd-0.5-2": (0.5, 2.0, 0.0, "last", None, 0),
    "kd-0-2": (0.0, 2.0, 0.0, "last", None, 0),
    "kd-0.5-1": (0.5, 1.0, 0.0, "last", None, 0),
    "kd-0.5-4": (0.5, 4.0, 0.0, "last", None, 0),
    "kdh-0.5-2": (0.5, 2.0, 1.0, "last", None, 0),
    "mean": (None, None, 0.0, "mean", None, 0),
    "mean-kd-0.5-2": (0.5, 2.0, 0.0, "mean", None, 0),
    "ep4": (None, None, 0.0, "last", 4.0, 0),
    "kd-0.5-2-ep4": (0.5, 2.0, 0.0, "last", 4.0, 0),
    "mean-kd-0.5-2-aug4": (0.5, 2.0, 0.0, "mean", None, TRANSFER_COPIES),
}


def _device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}; torch {torch.__version__}"
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores); torch {torch.__version__}"


def score(classifier, features: list[dict], pad_id: int, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Logits and the pooled input of the classification head (the hidden state the head reads), per row."""
    import torch

    from edgecut.runtime import pad_batch

    pooled: list[torch.Tensor] = []
    handle = classifier.score.register_forward_hook(lambda m, args, out: pooled.append(args[0].detach()))
    device = _device()
    classifier = classifier.to(device).eval()
    logits, hidden = [], []
    try:
        with torch.no_grad():
            for start in range(0, len(features), batch_size):
                feed = pad_batch([f["input_ids"] for f in features[start : start + batch_size]], pad_id)
                ids = torch.from_numpy(feed["input_ids"]).to(device)
                mask = torch.from_numpy(feed["attention_mask"]).to(device)
                pooled.clear()
                logits.append(classifier(input_ids=ids, attention_mask=mask).logits.float().cpu().numpy())
                hidden.append(_pool_last(pooled[0], mask).float().cpu().numpy())
    finally:
        handle.remove()
        classifier.to("cpu")
    return np.concatenate(logits), np.concatenate(hidden)


def _pool_last(states, mask):
    """The hidden state at each row's last real token (right padding, as edgecut pads)."""
    import torch

    if states.dim() == 2:  # a mean-pooled classifier hands the head [batch, hidden] already
        return states
    last = mask.sum(-1) - 1
    return states[torch.arange(states.shape[0], device=states.device), last]


class HiddenStateLoss:
    """Adds hidden_weight * (1 - cos(student pooled hidden, teacher pooled hidden)) to the distillation loss.

    The teacher's pooled hidden state travels in the soft-target row after its logits (the collator stacks
    whatever list each row carries), and the student's is caught by a hook on its head, so
    `edgecut.model.finetune.finetune` runs unchanged. Install with `with HiddenStateLoss(...)`.
    """

    def __init__(self, student, classes: int, hidden_weight: float):
        self.student, self.classes, self.weight = student, classes, hidden_weight
        self.caught: list = []

    def __enter__(self):
        import edgecut.model.finetune as ft

        self.original = ft.distillation_loss
        self.hooks = [
            self.student.score.register_forward_hook(lambda m, args, out: self.caught.append(args[0])),
            self.student.register_forward_pre_hook(self._catch_mask, with_kwargs=True),
        ]
        ft.distillation_loss = self.loss
        return self

    def _catch_mask(self, module, args, kwargs):
        self.mask = kwargs.get("attention_mask")
        self.caught.clear()

    def loss(self, logits, labels, teacher_rows, label_weight, alpha, temperature):
        import torch.nn.functional as F

        teacher_logits, teacher_hidden = teacher_rows[:, : self.classes], teacher_rows[:, self.classes :]
        base = self.original(logits, labels, teacher_logits, label_weight, alpha, temperature)
        student_hidden = _pool_last(self.caught[-1], self.mask).float()
        cos = F.cosine_similarity(student_hidden, teacher_hidden.float(), dim=-1)
        return base + self.weight * (1 - cos).mean()

    def __exit__(self, *exc):
        import edgecut.model.finetune as ft

        ft.distillation_loss = self.original
        for h in self.hooks:
            h.remove()


def build(loaded, dataset, layers: int, pooling: str, train: list[dict]):
    """A fresh copy of the base model cut to its first `layers` layers, with the label-word head."""
    from dataclasses import replace

    from edgecut.model.cut import cut_model

    fresh = replace(loaded, model=copy.deepcopy(loaded.model))
    return cut_model(fresh, layers, dataset.labels, dataset.label_words, pooling=pooling).classifier


def train_and_score(loaded, dataset, splits, recipe, layers, pooling="last", distillation=None, hidden_weight=0.0):
    from edgecut.model.finetune import finetune

    train, val, test = splits
    classifier = build(loaded, dataset, layers, pooling, train)
    start = time.monotonic()
    if hidden_weight:
        with HiddenStateLoss(classifier, len(dataset.labels), hidden_weight):
            tuned = finetune(classifier, loaded.tokenizer, train, val, recipe, distillation=distillation)
    else:
        tuned = finetune(classifier, loaded.tokenizer, train, val, recipe, distillation=distillation)
    seconds = time.monotonic() - start
    logits, _ = score(tuned.model, test, loaded.tokenizer.pad_token_id)
    test_acc = float((logits.argmax(-1) == np.array([f["labels"] for f in test])).mean())
    return tuned, test_acc, seconds


def done_runs(path: Path) -> dict[tuple, dict]:
    if not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(r["data"], r["seed"], r["layers"], r["variant"]): r for r in rows}


def run(args) -> None:
    from edgecut.model.data import Example, encode_examples, load_dataset
    from edgecut.model.finetune import Distillation
    from edgecut.model.load import load_model
    from edgecut.model.prompt import PromptFormat
    from edgecut.pipeline import ExportSettings

    out = Path(args.jsonl)
    done = done_runs(out)
    t0 = time.monotonic()
    loaded = load_model(args.model)
    print(f"loaded {args.model} in {time.monotonic() - t0:.0f} s on {_device()}", flush=True)
    depth = int(loaded.model.config.num_hidden_layers)
    device = _device_name()

    def write(row: dict) -> None:
        with out.open("a") as f:
            f.write(json.dumps(row | {"device": device}) + "\n")
        print(json.dumps(row), flush=True)

    for data in args.data.split(","):
        for seed in [int(s) for s in args.seeds.split(",")]:
            base = ExportSettings(
                model=args.model, data=data, seed=seed, per_class_cap=args.per_class_cap, test_size=args.test_size
            )
            dataset = load_dataset(base.data_spec())
            recipe = base.training_recipe(loaded.model.config)
            prompt = PromptFormat(dataset.template, tuple(dataset.demonstrations), recipe.max_length)
            splits = tuple(
                encode_examples(loaded.tokenizer, prompt, part)[0]
                for part in (dataset.train, dataset.validation, dataset.test)
            )
            students = [int(n) for n in args.layers.split(",")]
            wanted = [v for v in args.variants.split(",") if any((data, seed, n, v) not in done for n in students)]
            transfer: list[dict] = []
            if any(VARIANTS[v][5] for v in wanted):  # the teacher labels the transfer set once
                texts = augment_texts([e.text for e in dataset.train], TRANSFER_COPIES, seed)
                transfer, _ = encode_examples(loaded.tokenizer, prompt, [Example(t, 0) for t in texts])
            key = (data, seed, depth, "teacher")
            if key in done:
                teacher = done[key]
                soft = np.load(teacher["soft_targets"])
                if transfer and not teacher.get("transfer_targets"):
                    sys.exit(f"error: {out} has a {data} seed {seed} teacher without a transfer set: use a new --jsonl")
                transfer_logits = np.load(teacher["transfer_targets"]) if transfer else None
            else:
                best = None
                for lr in [float(x) for x in args.teacher_lrs.split(",")]:
                    r = replace(recipe, learning_rate=lr)
                    tuned, acc, secs = train_and_score(loaded, dataset, splits, r, depth)
                    val_acc = tuned.best_validation_accuracy
                    print(
                        f"teacher {data} seed {seed} lr {lr:g}: val {val_acc} test {acc:.4f} ({secs:.0f} s)", flush=True
                    )
                    if best is None or val_acc > best[0]:
                        best = (val_acc, lr, acc, secs, tuned)
                val_acc, lr, acc, secs, tuned = best
                logits, hidden = score(tuned.model, splits[0], loaded.tokenizer.pad_token_id)
                soft = np.concatenate([logits, hidden], axis=1).astype(np.float32)
                soft_dir = Path(args.soft_dir or out.parent)
                soft_path = soft_dir / f"{out.stem}-soft-{data}-{seed}.npy"
                soft_path.parent.mkdir(parents=True, exist_ok=True)
                np.save(soft_path, soft)
                transfer_path = soft_dir / f"{out.stem}-transfer-{data}-{seed}.npy"
                transfer_logits = None
                if transfer:
                    transfer_path.parent.mkdir(parents=True, exist_ok=True)
                    transfer_logits = score(tuned.model, transfer, loaded.tokenizer.pad_token_id)[0].astype(np.float32)
                    np.save(transfer_path, transfer_logits)
                teacher = {
                    "data": data,
                    "seed": seed,
                    "layers": depth,
                    "variant": "teacher",
                    "lr": lr,
                    "validation_accuracy": val_acc,
                    "test_accuracy": acc,
                    "train_seconds": secs,
                    "soft_targets": str(soft_path),
                    "transfer_targets": str(transfer_path) if transfer else None,
                }
                write(teacher)
                del tuned
            classes = len(dataset.labels)
            for variant in args.variants.split(","):  # each variant at every N before the next variant
                for layers in students:
                    if (data, seed, layers, variant) in done:
                        continue
                    alpha, temperature, hidden_weight, pooling, epochs, copies = VARIANTS[variant]
                    r = recipe if epochs is None else replace(recipe, epochs=epochs)
                    distillation = None
                    if alpha is not None:
                        targets = soft if hidden_weight else soft[:, :classes]
                        distillation = Distillation(targets, alpha=alpha, temperature=temperature)
                        if copies:
                            distillation = replace(distillation, unlabeled=transfer, unlabeled_logits=transfer_logits)
                    tuned, acc, secs = train_and_score(
                        loaded, dataset, splits, r, layers, pooling, distillation, hidden_weight
                    )
                    write(
                        {
                            "data": data,
                            "seed": seed,
                            "layers": layers,
                            "variant": variant,
                            "alpha": alpha,
                            "temperature": temperature,
                            "hidden_weight": hidden_weight,
                            "pooling": pooling,
                            "epochs": r.epochs,
                            "transfer_rows": len(transfer) if copies else 0,
                            "steps": tuned.steps,
                            "validation_accuracy": tuned.best_validation_accuracy,
                            "test_accuracy": acc,
                            "train_seconds": secs,
                            "teacher_test_accuracy": teacher["test_accuracy"],
                        }
                    )


def report(paths: list[Path]) -> None:
    rows = [r for p in paths for r in done_runs(p).values()]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["data"], r["layers"], r["variant"]), []).append(r)

    def span(values: list[float]) -> str:
        mean = statistics.mean(values) * 100
        sd = statistics.stdev(values) * 100 if len(values) > 1 else 0.0
        return f"{mean:.1f} ± {sd:.1f}"

    print("| data | N | variant | test accuracy % (mean ± sd) | seeds | vs plain | train s |")
    print("|---|---|---|---|---|---|---|")
    for (data, layers, variant), group in sorted(
        groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] != "plain", kv[0][2])
    ):
        acc = [g["test_accuracy"] for g in group]
        plain = {g["seed"]: g["test_accuracy"] for g in groups.get((data, layers, "plain"), [])}
        paired = [g["test_accuracy"] - plain[g["seed"]] for g in group if g["seed"] in plain]
        delta = f"{statistics.mean(paired) * 100:+.1f}" if paired and variant != "plain" else ""
        secs = statistics.mean(g["train_seconds"] for g in group)
        seeds = ",".join(str(g["seed"]) for g in sorted(group, key=lambda g: g["seed"]))
        print(f"| {data} | {layers} | {variant} | {span(acc)} | {seeds} | {delta} | {secs:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--data", default="rotten-tomatoes", help="comma-separated built-in sets or files")
    parser.add_argument("--seeds", default="0,42,421")
    parser.add_argument("--layers", default="1,2", help="the students' N, comma-separated")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"any of {', '.join(VARIANTS)}")
    parser.add_argument("--teacher-lrs", default="5e-4", help="each trains a teacher; the best on validation teaches")
    parser.add_argument(
        "--per-class-cap", type=int, default=None, help="training rows per class (default: the recipe's)"
    )
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--jsonl", default="distill-recipe.jsonl")
    parser.add_argument("--soft-dir", help="where the teachers' soft targets go (default: beside --jsonl)")
    parser.add_argument("--report", nargs="*", type=Path, help="print the table of these JSONL files and stop")
    args = parser.parse_args()
    if args.report is not None:
        report(args.report or [Path(args.jsonl)])
        return
    unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
    if unknown:
        sys.exit(f"error: unknown variant(s) {', '.join(unknown)}: use any of {', '.join(VARIANTS)}")
    run(args)


if __name__ == "__main__":
    main()
