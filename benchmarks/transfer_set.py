"""A transfer set for distillation: noisy copies of the training texts that the teacher labels.

A teacher fine-tuned on the training rows is nearly certain on them, so its soft targets there carry
little more than the labels (docs/smaller.md: the teacher moved a student by -0.6 to
+2.1 points). Task distillation in the literature labels *more* text with the teacher: Tang et al. 2019
("Distilling task-specific knowledge from BERT into simple neural networks") and TinyBERT perturb the
training sentences (masking words, swapping in other words, sampling spans) and train the student on the
teacher's logits for them. This script writes such a set, from the training split that `edgecut export`
draws for the same data and seed only (never validation or test rows), as a JSONL `text` column for
`edgecut export --teacher ART --unlabeled FILE`:

  each copy    a random window of at most --window-words words (long texts, such as news articles that
               the prompt cuts at --max-length tokens, give parts that the student never saw), then each
               word dropped with p --drop, or replaced with p --swap by a word drawn from the training texts

    python benchmarks/transfer_set.py --data bbc-news --seed 0 --copies 4 -o aug-bbc-0.jsonl
    edgecut export --data bbc-news --seed 0 --layers 1 --teacher full-out/ --unlabeled aug-bbc-0.jsonl -o n1/
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def augment_texts(
    texts: list[str],
    copies: int,
    seed: int,
    drop: float = 0.1,
    swap: float = 0.1,
    window_words: int = 80,
) -> list[str]:
    """`copies` noisy copies of every text, in order (text 0's copies first); whitespace words.

    A copy that comes out empty, or equal to its source, is drawn again (at most 5 times) so the teacher
    labels new text; one still empty is its window without noise. A text with no words gives no copies.
    """
    if copies < 0 or not 0 <= drop < 1 or not 0 <= swap < 1 or drop + swap >= 1 or window_words < 1:
        raise ValueError("need copies >= 0, 0 <= drop, swap and drop + swap < 1, window_words >= 1")
    rng = np.random.default_rng(seed)
    split = [t.split() for t in texts]
    vocabulary = [w for words in split for w in words]
    out: list[str] = []
    for words in split:
        if not words:
            continue
        source = " ".join(words)
        for _ in range(copies):
            for _attempt in range(5):
                start = int(rng.integers(0, len(words) - window_words + 1)) if len(words) > window_words else 0
                window = words[start : start + window_words]
                kept = []
                for word in window:
                    r = rng.random()
                    if r < drop:
                        continue
                    kept.append(vocabulary[int(rng.integers(len(vocabulary)))] if r < drop + swap else word)
                copy = " ".join(kept)
                if copy and copy != source:
                    break
            out.append(copy or " ".join(window))
    return out


def training_texts(data: str, seed: int, model: str = "smollm2-135m") -> list[str]:
    """The training rows' texts of the split that `edgecut export --data DATA --seed SEED` draws."""
    from edgecut.model.data import load_dataset
    from edgecut.pipeline import ExportSettings

    dataset = load_dataset(ExportSettings(model=model, data=data, seed=seed).data_spec())
    return [e.text for e in dataset.train]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="rotten-tomatoes", help="a built-in set or a file, as edgecut export takes")
    parser.add_argument("--seed", type=int, default=0, help="the export's --seed: it draws the split")
    parser.add_argument("--copies", type=int, default=4, help="noisy copies per training text")
    parser.add_argument("--drop", type=float, default=0.1)
    parser.add_argument("--swap", type=float, default=0.1)
    parser.add_argument("--window-words", type=int, default=80)
    parser.add_argument("-o", "--out", type=Path, required=True, help="the JSONL file to write (text column)")
    args = parser.parse_args()
    texts = training_texts(args.data, args.seed)
    try:
        copies = augment_texts(texts, args.copies, args.seed, args.drop, args.swap, args.window_words)
    except ValueError as e:
        parser.error(str(e))  # one line and exit code 2, before anything is written
    args.out.write_text("".join(json.dumps({"text": t}) + "\n" for t in copies))
    print(f"{len(copies)} copies of {len(texts)} training texts -> {args.out}")


if __name__ == "__main__":
    main()
