"""benchmarks/transfer_set.py: the noisy copies of the training texts that a teacher labels for its student."""

from __future__ import annotations

import json
import sys

import pytest
from conftest import load_script
from hypothesis import given, settings
from hypothesis import strategies as st

transfer_set = load_script("benchmarks/transfer_set.py")
words = st.text(alphabet="abcdefgh", min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(
    texts=st.lists(st.lists(words, min_size=0, max_size=30).map(" ".join), min_size=1, max_size=8),
    copies=st.integers(0, 4),
    window=st.integers(1, 12),
    seed=st.integers(0, 2**16),
)
def test_copies_are_windows_of_training_words_in_source_order(texts, copies, window, seed):
    out = transfer_set.augment_texts(texts, copies, seed, drop=0.1, swap=0.1, window_words=window)
    sources = [t for t in texts if t.split()]
    assert len(out) == copies * len(sources)  # every non-empty text gives its copies; an empty one none
    vocabulary = {w for t in texts for w in t.split()}
    for i, copy in enumerate(out):
        assert copy and set(copy.split()) <= vocabulary  # swapped-in words come from the training texts
        assert len(copy.split()) <= min(window, len(sources[i // copies].split()))
    assert out == transfer_set.augment_texts(texts, copies, seed, drop=0.1, swap=0.1, window_words=window)


def test_long_texts_give_windows_from_their_whole_length_and_noise_changes_words():
    article = " ".join(f"w{i}" for i in range(400))
    out = transfer_set.augment_texts([article], copies=50, seed=0, drop=0.1, swap=0.1, window_words=80)
    starts = [int(c.split()[0][1:]) for c in out]
    assert max(starts) > 200  # parts of the article that a 128-token prompt never shows
    kept = [len(c.split()) for c in out]
    assert all(n <= 80 for n in kept) and min(kept) < 80  # some words were dropped
    clean = transfer_set.augment_texts([article], copies=5, seed=0, drop=0.0, swap=0.0, window_words=400)
    assert clean == [article] * 5  # no noise, one window: the text itself (it cannot differ)


@pytest.mark.parametrize("bad", [dict(copies=-1), dict(drop=0.6, swap=0.5), dict(window_words=0), dict(drop=1.0)])
def test_bad_settings_are_refused(bad):
    kwargs = dict(copies=1, seed=0, drop=0.1, swap=0.1, window_words=10) | bad
    with pytest.raises(ValueError):
        transfer_set.augment_texts(["a b c"], **kwargs)


def test_the_script_writes_only_training_texts_as_jsonl(tiny_csv, tmp_path, monkeypatch):
    from edgecut.model.data import load_dataset
    from edgecut.pipeline import ExportSettings

    out = tmp_path / "transfer.jsonl"
    argv = ["transfer_set.py", "--data", str(tiny_csv), "--seed", "3", "--copies", "2", "--drop", "0", "--swap", "0"]
    monkeypatch.setattr(sys, "argv", [*argv, "--window-words", "1000", "-o", str(out)])
    transfer_set.main()
    written = [json.loads(line)["text"] for line in out.read_text().splitlines()]
    dataset = load_dataset(ExportSettings(data=str(tiny_csv), seed=3).data_spec())
    train = [" ".join(e.text.split()) for e in dataset.train]
    held_out = {" ".join(e.text.split()) for e in [*dataset.validation, *dataset.test]} - set(train)
    assert written == [t for t in train for _ in range(2)]  # without noise: each training text, twice
    assert held_out and not held_out & set(written)


def test_the_script_refuses_bad_settings_in_one_line_and_writes_nothing(tiny_csv, tmp_path, monkeypatch, capsys):
    out = tmp_path / "transfer.jsonl"
    argv = ["transfer_set.py", "--data", str(tiny_csv), "--drop", "0.7", "--swap", "0.5", "-o", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        transfer_set.main()
    assert exit_info.value.code == 2 and "drop + swap < 1" in capsys.readouterr().err and not out.exists()
