"""Layer selection: scores against an independent computation, and non-prefix cuts that reload and export."""

import copy
import csv
import math
import subprocess
import sys

import pytest
import torch
from conftest import tiny_model

from edgecut.errors import EdgecutError
from edgecut.graph.exporter import export_onnx, torch_logits
from edgecut.graph.parity import compare_logits, require_parity
from edgecut.model.classifier import make_classifier
from edgecut.model.prune import depth, keep_layers, layer_list
from edgecut.model.select import METHODS, select_layers
from edgecut.runtime import create_session, pad_batch, run_logits
from edgecut.targets import load_target

WORDS = [" negative", " positive"]
# Longer than Gemma3's 16-token sliding window in the tests' config, so a wrong layer type would show.
LONG = "Review: the plot was dull and boring and bad, the cast is weak and the script is clumsy and bland\nSentiment:"


@pytest.fixture()
def calibration(tokenizer, tiny_csv) -> list[list[int]]:
    with tiny_csv.open(encoding="utf-8") as f:
        rows = [row["text"].split() for row in csv.DictReader(f)][:24]
    # Lengths 1..6 words, so batches are padded and the padding must be masked out.
    texts = [f"Review: {' '.join(words[: 1 + i % 6])}\nSentiment:" for i, words in enumerate(rows)]
    return [tokenizer(t)["input_ids"] for t in texts]


def _make_identity(model, family: str, index: int) -> None:
    """Zero the projections that write into the residual stream, so layer `index` passes its input through."""
    _, layers = layer_list(model)
    layer = layers[index]
    if family == "gpt2":
        writers = (layer.attn.c_proj, layer.mlp.c_proj)
    else:
        writers = (layer.self_attn.o_proj, layer.mlp.down_proj)
    with torch.no_grad():
        for module in writers:
            for p in module.parameters():
                p.zero_()


def _strip_final_norm(model, family: str):
    """A copy whose last `hidden_states` element is the last layer's raw output (no final norm)."""
    copy_ = copy.deepcopy(model)
    if family == "gpt2":
        copy_.transformer.ln_f = torch.nn.Identity()
    else:
        copy_.model.norm = torch.nn.Identity()
    return copy_


def _reference_states(model, family, calibration, pad_id):
    """hidden_states (L+1 tensors, padded) and the attention mask of each batch, via output_hidden_states."""
    plain = _strip_final_norm(model, family)
    out = []
    with torch.no_grad():
        for start in range(0, len(calibration), 5):  # another batching than select_layers' default
            feed = {k: torch.from_numpy(v) for k, v in pad_batch(calibration[start : start + 5], pad_id).items()}
            states = plain(**feed, output_hidden_states=True).hidden_states
            out.append((states, feed["attention_mask"].bool()))
    return out


def _reference_bi(batches) -> list[float]:
    total = len(batches[0][0]) - 1
    sums, count = [0.0] * total, 0
    for states, mask in batches:
        count += int(mask.sum())
        for i in range(total):
            cos = torch.nn.functional.cosine_similarity(states[i], states[i + 1], dim=-1)
            sums[i] += float(cos[mask].double().sum())
    return [1 - s / count for s in sums]


def _reference_angular(batches, span: int) -> list[float]:
    total = len(batches[0][0]) - 1
    angles = [[] for _ in range(total - span + 1)]
    for states, mask in batches:
        last = mask.sum(-1) - 1
        rows = torch.arange(len(last))
        for start in range(total - span + 1):
            a, b = states[start][rows, last], states[start + span][rows, last]
            cos = torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=-1).clamp(-1, 1)
            angles[start] += (torch.arccos(cos) / math.pi).tolist()
    return [sum(a) / len(a) for a in angles]


def test_first_keeps_the_prefix_without_running_the_model(tokenizer):
    model = tiny_model("llama", tokenizer, layers=4)
    selection = select_layers(model, 3)
    assert selection.method == "first" and selection.kept == (0, 1, 2) and selection.scores == ()


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_block_influence_matches_hidden_states_and_keeps_the_most_influential(family, tokenizer, calibration):
    model = tiny_model(family, tokenizer, layers=4)
    _make_identity(model, family, 1)
    pad = tokenizer.pad_token_id
    selection = select_layers(model, 3, "block-influence", calibration, pad)
    expected = _reference_bi(_reference_states(model, family, calibration, pad))
    assert len(selection.scores) == 4
    torch.testing.assert_close(torch.tensor(selection.scores), torch.tensor(expected), rtol=0, atol=1e-5)
    assert abs(selection.scores[1]) < 1e-5  # the identity layer changes nothing
    assert selection.kept == (0, 2, 3)
    for n in (1, 2):
        kept = select_layers(model, n, "block-influence", calibration, pad).kept
        assert kept == tuple(sorted(sorted(range(4), key=lambda i: -expected[i])[:n]))


def test_block_influence_ignores_padding(tokenizer, calibration):
    # One long prompt batched with short ones: its padding positions must not enter the mean.
    model = tiny_model("llama", tokenizer, layers=3)
    pad = tokenizer.pad_token_id
    calibration = calibration[:12]
    alone = select_layers(model, 2, "block-influence", calibration, pad, batch_size=1)
    together = select_layers(model, 2, "block-influence", calibration, pad, batch_size=12)
    torch.testing.assert_close(torch.tensor(alone.scores), torch.tensor(together.scores), rtol=0, atol=1e-5)
    expected = _reference_bi(_reference_states(model, "llama", calibration, pad))
    torch.testing.assert_close(torch.tensor(alone.scores), torch.tensor(expected), rtol=0, atol=1e-5)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_angular_drops_the_closest_contiguous_block(family, tokenizer, calibration):
    model = tiny_model(family, tokenizer, layers=5)
    _make_identity(model, family, 2)
    _make_identity(model, family, 3)
    pad = tokenizer.pad_token_id
    selection = select_layers(model, 3, "angular", calibration, pad)
    batches = _reference_states(model, family, calibration, pad)
    expected = _reference_angular(batches, span=2)
    assert len(selection.scores) == 4  # starts 0..L-span
    torch.testing.assert_close(torch.tensor(selection.scores), torch.tensor(expected), rtol=0, atol=1e-5)
    assert selection.kept == (0, 1, 4)  # the two identity layers, 2 and 3, are the block dropped
    for n in (1, 2, 4):
        selection = select_layers(model, n, "angular", calibration, pad)
        expected = _reference_angular(batches, span=5 - n)
        start = min(range(len(expected)), key=expected.__getitem__)
        assert selection.kept == tuple(range(start)) + tuple(range(start + 5 - n, 5))


def test_angular_with_every_layer_keeps_all(tokenizer, calibration):
    model = tiny_model("llama", tokenizer, layers=3)
    selection = select_layers(model, 3, "angular", calibration, tokenizer.pad_token_id)
    assert selection.kept == (0, 1, 2) and len(selection.scores) == 4 and max(selection.scores) < 1e-3


def test_selection_leaves_the_model_as_it_was(tokenizer, calibration):
    model = tiny_model("llama", tokenizer, layers=3).train()
    before = copy.deepcopy(model.state_dict())
    select_layers(model, 2, "angular", calibration, tokenizer.pad_token_id)
    _, layers = layer_list(model)
    assert model.training and all(not layer._forward_hooks for layer in layers)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)


def _skipping_logits(model, skip: int, batch) -> torch.Tensor:
    """The full model's logits with layer `skip` replaced by the identity (what keeping the others means)."""
    _, layers = layer_list(model)

    def identity(module, args, kwargs, output):
        h_in = args[0] if args else kwargs["hidden_states"]
        return (h_in, *output[1:]) if isinstance(output, tuple) else h_in

    handle = layers[skip].register_forward_hook(identity, with_kwargs=True)
    try:
        with torch.no_grad():
            return model(**batch).logits
    finally:
        handle.remove()


@pytest.mark.parametrize("family", ["llama", "gpt2", "opt", "qwen2", "qwen3", "gemma3_text", "mistral"])
def test_non_prefix_cut_reloads_with_from_pretrained_alone(family, tokenizer, tmp_path):
    from transformers import AutoModelForCausalLM

    model = tiny_model(family, tokenizer, layers=3)
    kinds = getattr(model.config, "layer_types", None)
    batch = tokenizer([LONG, "good movie and great cast", "bad"], return_tensors="pt", padding=True)
    expected = _skipping_logits(model, 1, batch)
    keep_layers(model, [0, 2])
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert reloaded.config.num_hidden_layers == 2 and len(layer_list(reloaded)[1]) == 2
    if kinds is not None:
        assert list(reloaded.config.layer_types) == [kinds[0], kinds[2]]
    for layer_index, layer in enumerate(layer_list(reloaded)[1]):
        assert {m.layer_idx for m in layer.modules() if hasattr(m, "layer_idx")} == {layer_index}
    with torch.no_grad():
        cut, again = model(**batch).logits, reloaded(**batch).logits
    torch.testing.assert_close(cut, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(again, cut, rtol=0, atol=0)


def test_non_prefix_gpt2_with_inverse_layer_scaling_is_refused(tokenizer, tmp_path):
    """GPT-2 fixes each attention's scale 1/(layer_idx+1) at build time; moving a layer would change it."""
    from transformers import AutoModelForCausalLM

    model = tiny_model("gpt2", tokenizer, layers=3)
    model.config.scale_attn_by_inverse_layer_idx = True
    model = AutoModelForCausalLM.from_config(model.config).eval()  # rebuilt so the scales use the flag
    with pytest.raises(EdgecutError, match="only a prefix"):
        keep_layers(model, [0, 2])
    assert depth(model) == 3
    batch = tokenizer([LONG, "good movie"], return_tensors="pt", padding=True)
    keep_layers(model, [0, 1])  # a prefix keeps every index, so it stays exact after reload
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, model(**batch).logits, rtol=0, atol=0)


@pytest.mark.parametrize("family", ["llama", "gemma3_text"])
def test_non_prefix_classifier_exports_and_matches_torch(family, tokenizer, calibration, tmp_path):
    model = tiny_model(family, tokenizer, layers=3)
    pad = tokenizer.pad_token_id
    if family == "llama":
        _make_identity(model, family, 1)
        kept = select_layers(model, 2, "block-influence", calibration, pad).kept
    else:
        kept = (0, 2)
    assert kept == (0, 2)
    keep_layers(model, kept)
    clf = make_classifier(model, tokenizer, ["neg", "pos"], WORDS)
    seqs = calibration[:6] + [tokenizer(LONG)["input_ids"]]
    result = export_onnx(clf, pad_batch(seqs[:2], pad), tmp_path / "model.onnx")
    session = create_session(result.path, load_target("cpu"))
    parity = require_parity(compare_logits(torch_logits(clf, seqs, pad), run_logits(session, seqs, pad), atol=1e-4))
    assert parity.ok and parity.rows == len(seqs)


def test_methods_are_the_documented_ones():
    assert METHODS == ("first", "block-influence", "angular")


@pytest.mark.parametrize(
    ("n", "method", "use_calibration", "message"),
    [
        (2, "shortgpt", True, "unknown layer selection 'shortgpt': use one of first, block-influence, angular"),
        (0, "first", False, r"--layers 0 is out of range: this model has 3 layers, use 1\.\.3"),
        (4, "block-influence", True, "--layers 4 is out of range"),
        (-1, "angular", True, "--layers -1 is out of range"),
        (2, "block-influence", False, "--select block-influence needs calibration prompts"),
        (2, "angular", False, "--select angular needs calibration prompts"),
    ],
)
def test_bad_requests_are_refused_with_the_fix(tokenizer, calibration, n, method, use_calibration, message):
    model = tiny_model("llama", tokenizer, layers=3)
    with pytest.raises(EdgecutError, match=message):
        select_layers(model, n, method, calibration if use_calibration else None, tokenizer.pad_token_id)


def test_empty_calibration_prompts_are_refused(tokenizer, calibration):
    model = tiny_model("llama", tokenizer, layers=3)
    with pytest.raises(EdgecutError, match="needs calibration prompts"):
        select_layers(model, 2, "angular", [], tokenizer.pad_token_id)
    with pytest.raises(EdgecutError, match="has no tokens"):
        select_layers(model, 2, "block-influence", [*calibration, []], tokenizer.pad_token_id)


def test_importing_select_does_not_import_torch():
    code = "import edgecut.model.select, sys; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
