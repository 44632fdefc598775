"""Fixtures: a tokenizer trained in-process and tiny random models of every supported family.

Everything here is offline, deterministic and small enough for 2 CPU cores.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import random
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_configure(config):
    # Tiny models run faster on one thread than on two threads that wait on each other (measured: the
    # family-learning tests went from 73 s to 12 s on 2 cores); subprocesses the tests start keep the default.
    import torch

    torch.set_num_threads(1)


ROOT = Path(__file__).resolve().parent.parent


def load_script(relative: str, name: str | None = None):
    """A benchmark or script (they are files, not package modules) loaded afresh from `relative` under ROOT.

    It is registered in sys.modules under `name` (default: the file's stem) before it runs, so that its
    dataclasses find their module.
    """
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


POSITIVE = "good great fine lovely superb wonderful brilliant moving charming delightful".split()
NEGATIVE = "bad awful dull boring terrible weak tedious clumsy bland painful".split()
FILLER = "the movie film plot story actors cast script was is a an and of it this".split()
FAMILIES = ["gpt2", "llama", "opt", "qwen2", "qwen3", "gemma3_text", "mistral", "bert"]
DECODERS = [f for f in FAMILIES if f != "bert"]
# Llama's close relatives (transformers builds them from Llama's modules: plain nn.Embedding, RMSNorm, rotary
# attention; Qwen2 adds q/k/v biases, Qwen3 a norm on q and k). Their per-family exports repeat Llama's, so they
# run with `-m slow` (CI runs both suites); their learning and cutting tests stay in the default suite.
LLAMA_REPEATS = ("mistral", "qwen2", "qwen3")


def with_repeats_slow(families: list[str], repeats: tuple[str, ...] = LLAMA_REPEATS) -> list:
    """`families` as parameters, the repeats (by default Llama's) marked slow: for tests whose cost is one export
    per family."""
    return [pytest.param(f, marks=pytest.mark.slow) if f in repeats else f for f in families]


class SwallowsSignal:
    """An object whose finaliser raises `signum`: Python prints the handler's exception and drops it
    (what happened in CI when a SIGTERM landed in a regex finaliser)."""

    def __init__(self, signum: int):
        self.signum = signum

    def __del__(self):
        import signal

        signal.raise_signal(self.signum)


def _sentences(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "positive" if i % 2 else "negative"
        words = rng.sample(FILLER, 4) + rng.sample(POSITIVE if label == "positive" else NEGATIVE, 2)
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    """A byte-level BPE tokenizer trained on the test vocabulary, saved as a HF fast tokenizer."""
    return build_tokenizer(tmp_path_factory.mktemp("tokenizer"))


def build_tokenizer(path: Path) -> Path:
    """The tokenizer of `tokenizer_dir`, saved into `path` (benchmarks build tiny models with it too)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<pad>", "<eos>", "<unk>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    corpus = [s for s, _ in _sentences(400)] + [
        "Review: Sentiment: negative positive Label: Text: Article: Topic:"
    ] * 20
    tk.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    fast.save_pretrained(path)
    return path


@pytest.fixture()
def tokenizer(tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir)


def tiny_config(family: str, vocab_size: int, pad_id: int, layers: int = 3):
    import transformers as tf

    common = dict(vocab_size=vocab_size, pad_token_id=pad_id)
    decoder = dict(
        num_hidden_layers=layers,
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        **common,
    )
    if family == "gpt2":
        return tf.GPT2Config(n_layer=layers, n_embd=32, n_head=2, n_positions=256, **common)
    if family == "opt":
        return tf.OPTConfig(
            num_hidden_layers=layers,
            hidden_size=32,
            ffn_dim=64,
            num_attention_heads=2,
            word_embed_proj_dim=32,
            max_position_embeddings=256,
            **common,
        )
    if family == "llama":
        return tf.LlamaConfig(tie_word_embeddings=True, **decoder)
    if family == "qwen2":
        return tf.Qwen2Config(layer_types=["full_attention"] * layers, **decoder)
    if family == "qwen3":
        return tf.Qwen3Config(head_dim=8, **decoder)
    if family == "gemma3_text":
        kinds = ["sliding_attention", "full_attention"] * layers
        return tf.Gemma3TextConfig(head_dim=8, sliding_window=16, layer_types=kinds[:layers], **decoder)
    if family == "mistral":
        return tf.MistralConfig(sliding_window=None, **decoder)
    if family == "bert":
        return tf.BertConfig(
            num_hidden_layers=layers,
            hidden_size=32,
            intermediate_size=64,
            num_attention_heads=2,
            max_position_embeddings=256,
            **common,
        )
    raise ValueError(family)


def tiny_model(family: str, tokenizer, layers: int = 3, seed: int = 0):
    import torch
    from transformers import AutoModel, AutoModelForCausalLM

    torch.manual_seed(seed)
    config = tiny_config(family, len(tokenizer), tokenizer.pad_token_id, layers)
    auto = AutoModel if family == "bert" else AutoModelForCausalLM
    return auto.from_config(config).eval()


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory, tokenizer_dir):
    """family -> a saved tiny model directory (weights + tokenizer), as `--model DIR` would read."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    root = tmp_path_factory.mktemp("models")
    dirs = {}
    for family in FAMILIES:
        model = tiny_model(family, tok)
        model.save_pretrained(root / family)
        tok.save_pretrained(root / family)
        dirs[family] = root / family
    return dirs


@pytest.fixture(scope="session")
def tiny_csv(tmp_path_factory) -> Path:
    return write_tiny_csv(tmp_path_factory.mktemp("data") / "tiny.csv")


def write_tiny_csv(path: Path, rows: int = 240) -> Path:
    """The toy sentiment task of `tiny_csv`: two label words in each row's six words."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(_sentences(rows, seed=1))
    return path


@pytest.fixture(scope="session")
def tiny_artifact(tiny_model_dirs, tiny_csv, tmp_path_factory) -> Path:
    """One exported 1-layer tiny Llama artifact (with demonstrations, max_length 80) shared by every test
    file that only reads it: exporting is the slow part of the suite. Tests that change an artifact copy it
    first (`artifact_helpers.copy_artifact`)."""
    from artifact_helpers import export_tiny

    out = tmp_path_factory.mktemp("shared-artifact") / "llama-1"
    extra = ("--epochs", "4", "--lr", "3e-3", "--demos", "--max-length", "80")
    return export_tiny(tiny_model_dirs["llama"], tiny_csv, out, *extra)
