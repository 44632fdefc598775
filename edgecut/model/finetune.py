"""Fine-tune the slim classifier with transformers' Trainer (so `accelerate launch` scales it out).

Two named recipes. `paper` is the paper's (200 rows per class, one demonstration per class, AdamW 5e-5,
batch 1, up to 50 epochs, early stopping patience 15): it needs a GPU and, with so few rows, does not
learn in the few epochs a CPU can afford. `cpu` (the default) is what learns in minutes on 2 cores:
10x the rows, a higher learning rate, and short prompts without demonstrations (measured: 75.6 % on
rotten-tomatoes at N=1 in ~3 min; see the manual, docs/exporting.md "Recipes").

With a teacher (`Distillation`), each row also learns the teacher's soft targets; rows without labels
learn from them alone. Trainer's own printing is silenced: callers get `TrainProgress` through
`on_progress`, and every Trainer log dict goes to `log_path` as one JSON line.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edgecut.errors import EdgecutError
from edgecut.signals import raise_if_interrupted

# `--lr auto`: the family's learning rate times these factors (`--lr-grid` gives others), each trained for the
# recipe's epochs with an evaluation per epoch (so the grid is learning rate x epochs); the best validation
# accuracy wins.
LEARNING_RATE_GRID = (0.2, 1.0, 2.0)


@dataclass(frozen=True)
class Recipe:
    name: str
    epochs: float
    batch_size: int
    learning_rate: float
    per_class_cap: int  # training rows per class
    demonstrations: bool  # one demonstration per class in every prompt (paper's LM setting)
    max_length: int  # prompt tokens; the query is cut beyond this
    patience: int  # early stopping, in evaluations (one per epoch) without a better validation accuracy
    time_budget_s: float | None = None  # stop training after this many seconds (the best model is kept)
    seed: int = 0
    lr_scheduler: str = "constant"  # the paper uses no schedule; any transformers scheduler name works
    warmup_ratio: float = 0.0
    learning_rate_rule: str = "recipe"  # which rule chose learning_rate (LEARNING_RATE_RULES); the manifest records it
    learning_rate_factors: tuple[float, ...] = LEARNING_RATE_GRID  # `--lr auto`'s grid, times learning_rate

    def __post_init__(self) -> None:
        for key in ("epochs", "batch_size", "learning_rate", "per_class_cap", "max_length"):
            if getattr(self, key) <= 0:
                raise EdgecutError(f"--{key.replace('_', '-')} must be positive, got {getattr(self, key)}")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise EdgecutError("--time-budget must be positive (seconds)")


RECIPES = {
    # Measured on rotten-tomatoes, SmolLM2 N=1, 2 cores (docs/exporting.md "Recipes"): batch 32 with a warm-up
    # and linear decay learns faster and steadier than batch 8 at a constant rate, and takes fewer
    # optimizer steps over the 28 M embedding weights that dominate a 1-layer model's step time.
    "cpu": Recipe(
        "cpu",
        epochs=2,
        batch_size=32,
        learning_rate=5e-4,
        per_class_cap=4000,
        demonstrations=False,
        max_length=128,
        patience=3,
        lr_scheduler="linear",
        warmup_ratio=0.1,
    ),
    "paper": Recipe(
        "paper",
        epochs=50,
        batch_size=1,
        learning_rate=5e-5,
        per_class_cap=200,
        demonstrations=True,
        max_length=1024,
        patience=15,
    ),
}


# Learning rates per family, where the recipe's does not suit it. An explicit --lr always wins; `--lr auto`
# searches a grid around the family's value on validation (LEARNING_RATE_GRID).
#
# Encoders (BERT-like: all-MiniLM-L6) are fine-tuned at 2e-5-1e-4 in every reference (BERT, DistilBERT,
# sentence-transformers); the cpu recipe's 5e-4 suits a decoder cut, whose head starts from its LM rows.
ENCODER_LEARNING_RATE = 5e-5
# The highest default learning rate per model family (config.model_type). Gemma's one-layer cuts predicted the
# majority class at the cpu recipe's 5e-4. Measured on Gemma-3-270M-shaped one-layer models (width 640, scaled
# embeddings of unit RMS, random weights, two seeds, cpu recipe otherwise): 50 % / 70 % at 5e-4, 74 % / 91 % at
# 2e-4, 96 % / 100 % at 1e-4, where a SmolLM2-shaped (Llama) model learns at 5e-4 (98 %).
FAMILY_MAX_LEARNING_RATE = {"gemma": 1e-4, "gemma2": 1e-4, "gemma3": 1e-4, "gemma3_text": 1e-4}

# The highest default learning rate of a model fine-tuned at full depth in the `lm` setting (every layer
# kept: the paper's reference row, the sweep's `full`, a distillation teacher). The cpu recipe's 5e-4
# suits shallow cuts; SmolLM2's 30 layers scored lower with it on validation at every seed of
# rotten-tomatoes and bbc-news (test: 86.1 % against 87.9 % at 1e-4 on rotten-tomatoes;
# benchmarks/distill_recipe.py). Not in the `cls` setting: its head starts random.
FULL_DEPTH_MAX_LEARNING_RATE = 1e-4

LEARNING_RATE_RULES = {
    "given": "--lr as given",
    "recipe": "the recipe's learning rate",
    "encoder": f"an encoder's learning rate ({ENCODER_LEARNING_RATE:g}, the BERT-family range 2e-5-1e-4)",
    "family": "the family's cap (FAMILY_MAX_LEARNING_RATE)",
    "full-depth": f"the full-depth cap ({FULL_DEPTH_MAX_LEARNING_RATE:g})",
    "auto": "--lr auto: the best validation accuracy over the grid around the family's rate",
}


def get_recipe(
    name: str, model_type: str | None = None, full_depth: bool = False, encoder: bool = False, **overrides
) -> Recipe:
    """The named recipe with the given overrides (None keeps the recipe's value), its learning rate chosen by
    the family's rule and recorded in `learning_rate_rule`.

    Args:
        model_type: the model's `config.model_type`; families in FAMILY_MAX_LEARNING_RATE get at most that
            learning rate unless `learning_rate` is given.
        full_depth: every layer is kept and the head is the LM's (the `lm` setting); the learning rate is
            then at most FULL_DEPTH_MAX_LEARNING_RATE unless `learning_rate` is given.
        encoder: a BERT-like encoder: ENCODER_LEARNING_RATE unless `learning_rate` is given.
    """
    if name not in RECIPES:
        raise EdgecutError(f"unknown recipe '{name}': choose one of {', '.join(RECIPES)}")
    recipe = replace(RECIPES[name], **{k: v for k, v in overrides.items() if v is not None})
    if overrides.get("learning_rate") is not None:
        return replace(recipe, learning_rate_rule="given")
    if encoder:
        return replace(recipe, learning_rate=ENCODER_LEARNING_RATE, learning_rate_rule="encoder")
    caps = [
        (FAMILY_MAX_LEARNING_RATE.get(model_type or ""), "family"),
        (FULL_DEPTH_MAX_LEARNING_RATE if full_depth else None, "full-depth"),
    ]
    for cap, rule in sorted((c for c in caps if c[0] is not None), key=lambda c: c[0]):
        if recipe.learning_rate > cap:
            return replace(recipe, learning_rate=cap, learning_rate_rule=rule)
    return recipe


def learning_rate_grid(recipe: Recipe) -> list[float]:
    """`--lr auto`'s candidates, lowest first: the family's rate (the recipe's, as the rules chose it) times the
    recipe's factors (LEARNING_RATE_GRID unless `--lr-grid` gave others)."""
    return sorted({float(f"{recipe.learning_rate * f:.3g}") for f in recipe.learning_rate_factors})


@dataclass(frozen=True)
class TrainProgress:
    """What a progress bar shows: where training is, the latest training loss and validation accuracy."""

    step: int
    total_steps: int
    epoch: float
    loss: float | None  # mean training loss over the latest logging window; None before the first
    validation_accuracy: float | None  # after the latest evaluation; None before the first


@dataclass(frozen=True)
class Distillation:
    """Soft targets from a teacher (task distillation, Hinton et al. 2015).

    A labelled row's loss is alpha*CE(label) + (1-alpha)*T^2*KL(softmax(teacher/T) || softmax(student/T)); an
    unlabeled row, which only the teacher labelled, trains with T^2*KL alone. The T^2 keeps the soft term's
    gradients the size of the hard term's whatever T; alpha=1 without unlabeled rows is plain training.

    Args:
        train_logits: the teacher's logits on the training rows, [len(train), classes], in train's order.
        alpha: weight of the labels, in [0, 1].
        temperature: softens both distributions; above 1 the student also learns how the teacher ranks the
            wrong classes.
        unlabeled: encoded rows without labels (input_ids, attention_mask).
        unlabeled_logits: the teacher's logits on `unlabeled`, [len(unlabeled), classes].

    Raises:
        EdgecutError: alpha outside [0, 1], a temperature that is not positive, logits of the wrong shape.
    """

    train_logits: np.ndarray
    alpha: float = 0.5
    temperature: float = 2.0
    unlabeled: Sequence[dict] = ()
    unlabeled_logits: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise EdgecutError(f"--distill-alpha {self.alpha:g} must be between 0 and 1 (the weight of the labels)")
        if not self.temperature > 0:
            raise EdgecutError(f"--distill-temperature {self.temperature:g} must be positive")
        if np.ndim(self.train_logits) != 2:
            raise EdgecutError(f"teacher logits must be [rows, classes], got shape {np.shape(self.train_logits)}")
        want = (len(self.unlabeled), np.shape(self.train_logits)[1])
        got = None if self.unlabeled_logits is None else np.shape(self.unlabeled_logits)
        if len(self.unlabeled) and got != want:
            raise EdgecutError(f"{want[0]} unlabeled rows need teacher logits of shape {want}, got {got}")

    def features(self, train: Sequence[dict]) -> list[dict]:
        """The training rows with their soft targets, then the unlabeled rows with theirs."""
        if len(train) != len(self.train_logits):
            raise EdgecutError(
                f"{len(self.train_logits)} teacher logits for {len(train)} training rows: the teacher must score "
                "exactly the training rows, in order"
            )
        rows = [
            dict(f, teacher_logits=[float(x) for x in t], label_weight=1.0)
            for f, t in zip(train, self.train_logits, strict=True)
        ]
        for f, t in zip(self.unlabeled, self.unlabeled_logits if len(self.unlabeled) else [], strict=True):
            # label 0 is a placeholder: a zero label_weight keeps it out of the loss
            rows.append(
                {
                    "input_ids": f["input_ids"],
                    "attention_mask": f["attention_mask"],
                    "labels": 0,
                    "teacher_logits": [float(x) for x in t],
                    "label_weight": 0.0,
                }
            )
        return rows


def distillation_loss(logits, labels, teacher_logits, label_weight, alpha: float, temperature: float):
    """Mean over the batch of alpha*CE + (1-alpha)*T^2*KL (labelled rows) and T^2*KL (unlabeled rows)."""
    import torch
    import torch.nn.functional as F

    logits = logits.float()
    ce = F.cross_entropy(logits, labels, reduction="none")
    labelled = label_weight > 0
    if alpha == 1.0 and bool(labelled.all()):
        return ce.mean()  # plain training, to the last bit: no soft term at all
    t = temperature
    kl = F.kl_div(
        F.log_softmax(logits / t, dim=-1),
        F.log_softmax(teacher_logits.float() / t, dim=-1),
        log_target=True,
        reduction="none",
    ).sum(-1) * (t * t)
    return torch.where(labelled, alpha * ce + (1 - alpha) * kl, kl).mean()


class BudgetClock:
    """When a time budget stops training, counting evaluations (and checkpoint saves) as part of it.

    Training stops at the first step after which one more step plus an evaluation would not fit: the
    stopping step is evaluated once, so the best model is still chosen and the evaluation itself stays
    inside the budget. Until the first evaluation has been timed, an evaluation is estimated from the
    step time (a forward pass over the validation rows costs about a third of training on as many rows;
    counted as half to leave room for the checkpoint save).
    """

    def __init__(
        self, budget_s: float | None, eval_rows: int, batch_size: int, clock: Callable[[], float] = time.monotonic
    ):
        self.budget, self.eval_rows, self.batch_size, self.clock = budget_s, eval_rows, batch_size, clock
        self.start = clock()
        self.hit = False
        self.step_s: float | None = None  # mean seconds of one training step
        self.eval_s: float | None = None  # the latest evaluation (with its save), measured
        self._steps = 0
        self._began: float | None = None
        self._ended: float | None = None
        self._evaluated_since_step = False

    def step_begin(self) -> None:
        now = self.clock()
        if self._evaluated_since_step and self._ended is not None:
            self.eval_s = now - self._ended  # everything between two steps: evaluation, save, logging
        self._evaluated_since_step = False
        self._began = now

    def evaluated(self) -> None:
        self._evaluated_since_step = True

    def eval_estimate(self) -> float:
        if self.eval_s is not None:
            return self.eval_s
        return (self.step_s or 0.0) * self.eval_rows / self.batch_size / 2

    def step_end(self) -> bool:
        """Whether training must stop (and evaluate) now."""
        now = self.clock()
        if self._began is not None:
            self._steps += 1
            took = now - self._began
            self.step_s = took if self.step_s is None else self.step_s + (took - self.step_s) / self._steps
        self._ended = now
        if self.budget is None or self.step_s is None:
            return False
        left = self.budget - (now - self.start)
        if left < self.step_s + self.eval_estimate():
            self.hit = True
        return self.hit


@dataclass
class FinetuneResult:
    model: object
    validation_accuracy: list[float] = field(default_factory=list)  # after each evaluation
    best_validation_accuracy: float = 0.0
    steps: int = 0
    seconds: float = 0.0
    stopped_by: str = "epochs"  # epochs | early-stopping | time-budget
    evaluations: list[int] = field(default_factory=list)  # the step of each evaluation
    majority_rate: float = 0.0  # validation accuracy of always predicting the most common class

    @property
    def learned(self) -> bool:
        """False when the best model is no better than predicting one class for every text: say so."""
        return self.best_validation_accuracy > self.majority_rate + 1e-9


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _accuracy(eval_pred) -> dict[str, float]:
    logits, labels = eval_pred
    return {"accuracy": float((np.argmax(logits, axis=-1) == labels).mean())}


@contextlib.contextmanager
def _quiet_transformers():
    """No "Writing model shards" bars (save_pretrained's tqdm) and no warnings from transformers while training."""
    from transformers.utils import logging as hf_logging

    bars_were_off, level = hf_logging.is_progress_bar_enabled() is False, hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if not bars_were_off:
            hf_logging.enable_progress_bar()


def finetune(
    classifier,
    tokenizer,
    train: list[dict],
    validation: list[dict],
    recipe: Recipe,
    *,
    on_progress: Callable[[TrainProgress], None] | None = None,
    log_path: Path | None = None,
    workdir: Path | None = None,
    distillation: Distillation | None = None,
    show_progress: bool = False,
) -> FinetuneResult:
    """Train `classifier` in place on encoded features; the model with the best validation accuracy wins.

    Training runs on the GPU when torch sees one; the model comes back on the CPU either way.

    Args:
        train, validation: encoded rows (input_ids, attention_mask, labels).
        on_progress: called after every step and every evaluation (draw a progress bar from it).
        log_path: every Trainer log dict (loss, grad norm, learning rate, evaluation) as one JSON line.
        workdir: where Trainer's checkpoints go (a fresh subdirectory, removed afterwards); default: TMPDIR.
        distillation: soft targets from a teacher, and unlabeled rows (see `Distillation`).
        show_progress: Trainer's own tqdm bar (for scripts without `on_progress`).

    Raises:
        EdgecutError: teacher logits that do not match the training rows.
    """
    from transformers import (
        DataCollatorWithPadding,
        EarlyStoppingCallback,
        PrinterCallback,
        ProgressCallback,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    rows = distillation.features(train) if distillation is not None else list(train)
    padding = DataCollatorWithPadding(tokenizer)

    def collate(features: list[dict]) -> dict:
        """Pad the token ids; stack the soft targets that distillation adds to each row."""
        import torch

        soft = [f for f in features if "teacher_logits" in f]
        batch = dict(padding([{k: f[k] for k in ("input_ids", "attention_mask", "labels")} for f in features]))
        if soft and len(soft) == len(features):
            batch["teacher_logits"] = torch.tensor([f["teacher_logits"] for f in features], dtype=torch.float32)
            batch["label_weight"] = torch.tensor([f["label_weight"] for f in features], dtype=torch.float32)
        return batch

    class DistillingTrainer(Trainer):
        """Trainer whose loss adds the teacher's soft targets where a batch carries them."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if "teacher_logits" not in inputs:  # validation, or no teacher: the model's own loss
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            teacher, weight, labels = inputs.pop("teacher_logits"), inputs.pop("label_weight"), inputs.pop("labels")
            outputs = model(**inputs)
            loss = distillation_loss(
                outputs.logits, labels, teacher, weight, distillation.alpha, distillation.temperature
            )
            return (loss, outputs) if return_outputs else loss

    clock = BudgetClock(recipe.time_budget_s, len(validation), recipe.batch_size)

    class Budget(TrainerCallback):
        """Stops training when the next step plus an evaluation would not fit the budget (see BudgetClock)."""

        def on_step_begin(self, args, state, control, **kwargs):
            clock.step_begin()

        def on_step_end(self, args, state, control, **kwargs):
            raise_if_interrupted()  # a Ctrl-C or SIGTERM whose exception a __del__ swallowed stops here
            if clock.step_end():
                control.should_training_stop = control.should_evaluate = control.should_save = True
            return control

        def on_evaluate(self, args, state, control, **kwargs):
            evaluated_at.append(state.global_step)
            clock.evaluated()

        def on_epoch_end(self, args, state, control, **kwargs):
            # The default flow asks for an evaluation at every epoch's end; the stopping step already had one.
            if evaluated_at and evaluated_at[-1] == state.global_step:
                control.should_evaluate = control.should_save = False
            return control

    class Report(TrainerCallback):
        """Progress for the caller, and the raw log as JSON lines."""

        def __init__(self):
            self.loss: float | None = None
            self.accuracy: float | None = None

        def _report(self, state) -> None:
            if on_progress is not None:
                progress = TrainProgress(
                    state.global_step, state.max_steps, float(state.epoch or 0.0), self.loss, self.accuracy
                )
                on_progress(progress)

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if "loss" in logs:
                self.loss = float(logs["loss"])
            if log_file is not None:
                record = {"step": state.global_step, "epoch": state.epoch} | logs
                log_file.write(json.dumps(record, default=float) + "\n")
                log_file.flush()

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            if metrics and "eval_accuracy" in metrics:
                self.accuracy = float(metrics["eval_accuracy"])
            self._report(state)

        def on_step_end(self, args, state, control, **kwargs):
            self._report(state)

    evaluated_at: list[int] = []
    start = time.monotonic()
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="edgecut-train-", dir=workdir))
        log_file = None
        if log_path is not None:
            Path(log_path).parent.mkdir(parents=True, exist_ok=True)
            log_file = stack.enter_context(Path(log_path).open("w", encoding="utf-8"))
        stack.enter_context(_quiet_transformers())
        args = TrainingArguments(
            output_dir=scratch,
            num_train_epochs=recipe.epochs,
            per_device_train_batch_size=recipe.batch_size,
            per_device_eval_batch_size=max(16, recipe.batch_size),
            learning_rate=recipe.learning_rate,
            lr_scheduler_type=recipe.lr_scheduler,
            warmup_steps=recipe.warmup_ratio,  # a float < 1 is a fraction of the training steps
            weight_decay=0.0,
            optim="adamw_torch",
            eval_strategy="epoch",
            save_strategy="epoch",
            save_only_model=True,
            save_total_limit=1,
            load_best_model_at_end=True,
            metric_for_best_model="accuracy",
            greater_is_better=True,
            seed=recipe.seed,
            data_seed=recipe.seed,
            logging_steps=10,
            report_to="none",
            disable_tqdm=not show_progress,
            dataloader_num_workers=0,
            dataloader_pin_memory=_has_cuda(),
            remove_unused_columns=False,  # the soft targets travel in the rows; the collator picks the inputs
        )
        trainer = DistillingTrainer(
            model=classifier,
            args=args,
            train_dataset=rows,
            eval_dataset=validation,
            data_collator=collate,
            compute_metrics=_accuracy,
            callbacks=[EarlyStoppingCallback(early_stopping_patience=recipe.patience), Budget(), Report()],
        )
        trainer.remove_callback(PrinterCallback)  # prints every log dict when tqdm is off
        if not show_progress:
            trainer.remove_callback(ProgressCallback)
        trainer.train()
        history = [log["eval_accuracy"] for log in trainer.state.log_history if "eval_accuracy" in log]
        # Trainer puts the model on the GPU when there is one; everything after training (reference
        # logits, ONNX export) feeds it CPU tensors, so hand it back on the CPU.
        model = trainer.model.eval().to("cpu")
        steps = trainer.state.global_step
        epochs_done = trainer.state.epoch or 0
    if clock.hit:
        stopped = "time-budget"
    elif epochs_done + 1e-6 < recipe.epochs:
        stopped = "early-stopping"
    else:
        stopped = "epochs"
    seconds = time.monotonic() - start
    counts = np.bincount([int(f["labels"]) for f in validation]) if validation else np.zeros(1)
    majority = float(counts.max() / max(1, counts.sum()))
    return FinetuneResult(model, history, max(history, default=0.0), steps, seconds, stopped, evaluated_at, majority)


def train_with_rate_search(recipe: Recipe, auto: bool, classifier, train_one: Callable, progress) -> tuple:
    """(result, recipe, search record): one run at `recipe`'s rate, or, with `auto` (`--lr auto`), one run per
    rate of `learning_rate_grid(recipe)`, each from the same untrained copy with the time budget shared, the
    best on validation kept. Each run evaluates every epoch, so the grid is learning rate x epochs.

    Args:
        train_one: `(classifier, recipe, run_name) -> FinetuneResult`; it trains `classifier` in place.
        progress: an `edgecut.progress.Progress` (a stage per run, a note with the winner and the time).
    """
    import copy

    if not auto:
        with progress.stage("fine-tune"):
            tuned = train_one(classifier, recipe, "train")
        return tuned, recipe, {"rule": LEARNING_RATE_RULES[recipe.learning_rate_rule], "run": "train"}
    grid = learning_rate_grid(recipe)
    budget = recipe.time_budget_s / len(grid) if recipe.time_budget_s else None
    untrained, runs, best = copy.deepcopy(classifier), [], None
    for i, lr in enumerate(grid):
        candidate = replace(recipe, learning_rate=lr, time_budget_s=budget, learning_rate_rule="auto")
        with progress.stage(f"fine-tune at lr {lr:g} ({i + 1} of {len(grid)}, --lr auto)"):
            # the last run may train the original: nothing needs the untrained copy after it
            result = train_one(classifier if i == len(grid) - 1 else copy.deepcopy(untrained), candidate, f"train-{i}")
        runs.append(
            {
                "learning_rate": lr,
                "best_validation_accuracy": result.best_validation_accuracy,
                "validation_accuracy": result.validation_accuracy,  # one per epoch
                "seconds": round(result.seconds, 1),
            }
        )
        if best is None or result.best_validation_accuracy > best[1].best_validation_accuracy:
            best = (candidate, result, i)
    winner, tuned, index = best
    seconds = sum(r["seconds"] for r in runs)
    progress.note(
        f"--lr auto: {len(grid)} runs in {seconds:.0f} s ({len(grid)}x one run's training); "
        f"lr {winner.learning_rate:g} won on validation ({tuned.best_validation_accuracy:.1%})"
    )
    edge = grid_edge([r["best_validation_accuracy"] for r in runs], index)
    if edge is not None:
        beyond = winner.learning_rate * (2 if edge == "highest" else 0.5)
        progress.warn(
            f"--lr auto: the winner, lr {winner.learning_rate:g}, is the grid's {edge} rate and beat its neighbour, "
            f"so a rate beyond the grid may score better on validation: try --lr {beyond:g}, or widen --lr-grid"
        )
    record = {
        "rule": LEARNING_RATE_RULES["auto"],
        "grid": runs,
        "chosen": winner.learning_rate,
        "edge": edge,
        "seconds": round(seconds, 1),
        "run": f"train-{index}",
    }
    return tuned, winner, record


def grid_edge(scores: list[float], winner: int) -> str | None:
    """Which end of the grid the winning rate is ("highest", "lowest") when it scored above its neighbour there:
    the best rate may lie beyond the grid. None inside the grid, or on a tie (a flat curve points nowhere)."""
    if len(scores) < 2:
        return None
    if winner == len(scores) - 1 and scores[winner] > scores[winner - 1]:
        return "highest"
    if winner == 0 and scores[0] > scores[1]:
        return "lowest"
    return None
