import copy

import numpy as np
import onnx
import pytest
import torch
from conftest import FAMILIES, LLAMA_REPEATS, tiny_model, with_repeats_slow

import edgecut.model.vocab as vocab
from edgecut.errors import DataError, EdgecutError
from edgecut.graph.exporter import export_onnx, torch_logits
from edgecut.graph.parity import POLICY, compare_logits, require_parity
from edgecut.graph.quantize import graph_bytes, to_fp16, to_int8
from edgecut.model.classifier import label_token_ids, make_classifier
from edgecut.model.prompt import PromptFormat
from edgecut.model.prune import count_parameters
from edgecut.model.vocab import (
    VocabSpec,
    always_kept_ids,
    corpus_sequences,
    coverage,
    parse_vocab,
    read_corpus,
    task_token_ids,
    trim_vocabulary,
)
from edgecut.runtime import create_session, pad_batch, run_logits
from edgecut.targets import Int8Settings, load_target

WORDS = [" negative", " positive"]
FORMAT = PromptFormat("Review: {text}\nSentiment:{label}", max_length=64)
TRAIN = ["good great film", "the plot was dull", "a boring film", "the cast was superb"]
# Words the training texts never use: their ids are dropped and must reach the fallback row.
UNSEEN = ["lovely charming story", "awful tedious script", "clumsy and bland, painful"]


def _prompts(tokenizer, texts):
    return [tokenizer(FORMAT.render(t))["input_ids"] for t in texts]


def _classifier(family, tokenizer):
    lm = tiny_model(family, tokenizer, layers=1)
    torch.manual_seed(1)
    init = "random" if family == "bert" else "lm"
    return lm, make_classifier(lm, tokenizer, ["neg", "pos"], WORDS, init=init)


def _head(clf):
    return clf.classifier if hasattr(clf, "classifier") else clf.score  # BERT names its head `classifier`


def _keep(tokenizer):
    train = _prompts(tokenizer, TRAIN)
    return train, task_token_ids(train, VocabSpec("task"), always_kept_ids(tokenizer, FORMAT, WORDS))


# --- choosing the ids (no model) ---


@pytest.mark.parametrize(
    ("value", "spec"),
    [
        ("all", VocabSpec("all")),
        ("task", VocabSpec("task")),
        (" Task ", VocabSpec("task")),
        ("auto", VocabSpec("auto")),
        ("8000", VocabSpec("top", 8000)),
    ],
)
def test_parse_vocab(value, spec):
    assert parse_vocab(value) == spec
    assert parse_vocab(str(spec)) == spec


@pytest.mark.parametrize("bad", ["0", "-5", "1.5", "some", "", "8k"])
def test_parse_vocab_refuses_anything_else(bad):
    with pytest.raises(EdgecutError, match="use 'all'.*'task'.*--vocab 8000"):
        parse_vocab(bad)


def test_task_keeps_every_seen_id_and_the_always_ids():
    seqs = [[5, 6, 6], [7, 5]]
    assert task_token_ids(seqs, VocabSpec("task"), {0, 99}) == [0, 5, 6, 7, 99]


def test_top_n_fills_up_with_the_most_frequent_ids_after_the_always_ids():
    seqs = [[9, 9, 9, 4, 4, 8, 8, 3], [9, 1]]  # counts: 9:4, 4:2, 8:2, 3:1, 1:1
    # 4 and 8 tie: the smaller id wins, so the choice does not depend on dict order.
    assert task_token_ids(seqs, VocabSpec("top", 3), {0}) == [0, 4, 9]
    assert task_token_ids(seqs, VocabSpec("top", 100), {0}) == [0, 1, 3, 4, 8, 9]
    with pytest.raises(EdgecutError, match="--vocab 1 is smaller than the 2 ids.*--vocab 2"):
        task_token_ids(seqs, VocabSpec("top", 1), {0, 1})
    with pytest.raises(EdgecutError, match="nothing to choose"):
        task_token_ids(seqs, VocabSpec("all"), {0})


def test_coverage_counts_tokens_not_distinct_ids():
    assert coverage([[1, 1, 1, 2], [3]], [1]) == pytest.approx(3 / 5)
    assert coverage([], [1]) == 1.0


def test_always_kept_ids_cover_template_demonstrations_label_words_and_specials(tokenizer):
    fmt = PromptFormat("Review: {text}\nSentiment:{label}", (("dull", " negative"), ("superb", " positive")), 64)
    ids = always_kept_ids(tokenizer, fmt, WORDS)
    for piece in ["Review:", "\nSentiment:", " negative", " positive", " dull", " superb"]:
        assert set(tokenizer(piece, add_special_tokens=False)["input_ids"]) <= ids, piece
    assert set(tokenizer(fmt.render(""))["input_ids"]) <= ids
    assert {tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id} <= ids
    assert set(tokenizer.added_tokens_decoder) <= ids
    assert not set(tokenizer(" lovely charming", add_special_tokens=False)["input_ids"]) <= ids


def test_corpus_file(tmp_path, tokenizer):
    path = tmp_path / "more.txt"
    path.write_text("lovely film\n\n  charming  \n", encoding="utf-8")
    assert read_corpus(path) == ["lovely film", "charming"]
    # Encoded inside the prompt, as serving encodes it.
    assert corpus_sequences(tokenizer, FORMAT, ["charming"]) == _prompts(tokenizer, ["charming"])
    with pytest.raises(DataError, match="does not exist"):
        read_corpus(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("\n \n", encoding="utf-8")
    with pytest.raises(DataError, match="no text"):
        read_corpus(tmp_path / "empty.txt")
    (tmp_path / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        read_corpus(tmp_path / "latin.txt")


# --- trimming the model ---


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("fallback", vocab.FALLBACKS)
def test_trimmed_classifier_keeps_logits_heads_and_maps_dropped_ids(family, fallback, tokenizer):
    lm, clf = _classifier(family, tokenizer)
    train, keep = _keep(tokenizer)
    pad = tokenizer.pad_token_id
    full = clf.get_input_embeddings().weight.detach().clone()
    size, hidden = full.shape
    before = torch_logits(clf, train, pad)
    head = _head(clf).weight.detach().clone()

    trim = trim_vocabulary(clf, keep, fallback)

    # Prompts made only of kept ids: exactly the same numbers.
    np.testing.assert_array_equal(torch_logits(clf, train, pad), before)
    rows = len(keep) + (fallback == "mean")
    assert (trim.kept, trim.vocab_size, trim.table_rows, trim.fallback) == (len(keep), size, rows, fallback)
    assert trim.params_after == trim.params_before - (size - rows) * hidden == count_parameters(clf)
    clf.tie_weights()  # nothing may re-attach the full table
    assert count_parameters(clf) == trim.params_after
    assert not any(p.shape[0] == size for p in clf.parameters())
    emb = clf.get_input_embeddings()
    assert emb.weight.shape == (rows, hidden) and emb.num_embeddings == size
    # The source LM is untouched, and the head still holds the label words' LM-head rows.
    assert lm.get_input_embeddings().weight.shape == (size, hidden)
    torch.testing.assert_close(_head(clf).weight, head, rtol=0, atol=0)
    if family != "bert":
        torch.testing.assert_close(
            clf.score.weight, lm.get_output_embeddings().weight[label_token_ids(tokenizer, WORDS)], rtol=0, atol=0
        )

    dropped = sorted(set(range(size)) - set(keep))
    remap = emb.remap
    assert remap.dtype == torch.int64 and remap.shape == (size,)
    torch.testing.assert_close(emb.weight[remap[keep]], full[keep], rtol=0, atol=0)
    if fallback == "mean":
        assert (remap[dropped] == len(keep)).all()
        torch.testing.assert_close(emb.weight[-1], full[dropped].mean(0))
    else:
        unit = torch.nn.functional.normalize(full, dim=1)
        nearest = torch.tensor(keep)[(unit[dropped] @ unit[keep].T).argmax(1)]
        assert torch.equal(remap[dropped], remap[nearest])


def test_nearest_is_the_same_in_small_chunks(tokenizer, monkeypatch):
    _, keep = _keep(tokenizer)
    _, one = _classifier("llama", tokenizer)
    _, many = _classifier("llama", tokenizer)
    trim_vocabulary(one, keep, "nearest")
    monkeypatch.setattr(vocab, "_SCORES_PER_CHUNK", 3 * len(keep))  # 3 dropped rows per chunk
    trim_vocabulary(many, keep, "nearest")
    assert torch.equal(one.get_input_embeddings().remap, many.get_input_embeddings().remap)


def test_gemma3_keeps_its_embedding_scale(tokenizer):
    _, clf = _classifier("gemma3_text", tokenizer)
    _, keep = _keep(tokenizer)
    table = clf.get_input_embeddings()
    trim_vocabulary(clf, keep, "mean")
    emb = clf.get_input_embeddings()
    assert emb.table is table and float(table.embed_scale) == pytest.approx(32**0.5)
    ids = torch.tensor([keep[:4]])
    torch.testing.assert_close(emb(ids), emb.weight[emb.remap[ids]] * 32**0.5)


def test_keeping_every_id_changes_nothing_and_refusals(tokenizer):
    _, clf = _classifier("qwen2", tokenizer)
    size = clf.get_input_embeddings().weight.shape[0]
    table = clf.get_input_embeddings()
    trim = trim_vocabulary(clf, range(size), "mean")
    assert trim.fallback == "none" and clf.get_input_embeddings() is table
    assert trim.params_after == trim.params_before
    with pytest.raises(EdgecutError, match="fallback 'zero'"):
        trim_vocabulary(clf, [0, 1], "zero")
    with pytest.raises(ValueError, match=f"0..{size - 1}"):
        trim_vocabulary(clf, [0, size], "mean")
    trim_vocabulary(clf, [0, 1, 2], "mean")
    with pytest.raises(EdgecutError, match="already trimmed"):
        trim_vocabulary(clf, [0, 1], "mean")


def test_manifest_record(tokenizer):
    _, clf = _classifier("llama", tokenizer)
    train, keep = _keep(tokenizer)
    record = trim_vocabulary(clf, keep, "nearest").as_dict(VocabSpec("top", 30), coverage(train, keep))
    assert record["vocab"] == "30" and record["fallback"] == "nearest" and record["test_coverage"] == 1.0
    assert record["kept"] == len(keep) == record["table_rows"]
    assert record["vocab_size"] == len(tokenizer)
    assert record["parameters"]["after"] < record["parameters"]["before"]


@pytest.mark.parametrize("family", FAMILIES)
def test_a_training_step_moves_only_the_kept_rows_like_the_full_model(family, tokenizer):
    _, full = _classifier(family, tokenizer)
    small = copy.deepcopy(full)
    train, keep = _keep(tokenizer)
    trim = trim_vocabulary(small, keep, "mean")
    remap = small.get_input_embeddings().remap.clone()
    batch = {k: torch.from_numpy(v) for k, v in pad_batch(train, tokenizer.pad_token_id).items()}
    labels = torch.tensor([1, 0, 0, 1])
    optimizers = {}
    for name, model in (("full", full), ("small", small)):
        model.eval()  # no dropout: the two steps must see the same numbers
        optimizers[name] = torch.optim.AdamW(model.parameters(), lr=1e-2)
        model(**batch, labels=labels).loss.backward()
        optimizers[name].step()

    state = optimizers["small"].state
    moments = sum(s["exp_avg"].numel() + s["exp_avg_sq"].numel() for s in state.values())
    assert moments == 2 * trim.params_after  # AdamW's state is the small model's size
    emb = small.get_input_embeddings()
    assert torch.equal(emb.remap, remap)
    torch.testing.assert_close(emb.weight[remap[keep]], full.get_input_embeddings().weight[keep])
    full_params = dict(full.named_parameters())
    for name, p in small.named_parameters():
        if p is not emb.weight:
            torch.testing.assert_close(p, full_params[name], msg=name)


def test_finetune_trains_and_reloads_a_trimmed_classifier(tokenizer):
    from edgecut.model.finetune import finetune, get_recipe

    _, clf = _classifier("llama", tokenizer)
    train, keep = _keep(tokenizer)
    trim_vocabulary(clf, keep, "nearest")
    start = clf.get_input_embeddings().weight.detach().clone()
    rows = [{"input_ids": s, "attention_mask": [1] * len(s), "labels": i % 2} for i, s in enumerate(train * 4)]
    recipe = get_recipe("cpu", epochs=1, batch_size=8, max_length=64, warmup_ratio=0.0)
    tuned = finetune(clf, tokenizer, rows, rows[:4], recipe, show_progress=False).model
    emb = tuned.get_input_embeddings()
    assert emb.weight.shape == start.shape and emb.remap.shape == (len(tokenizer),)
    assert not torch.equal(emb.weight.detach(), start)


# Llama stands for the families whose input embedding is a plain nn.Embedding (Mistral, Qwen2, Qwen3) and GPT-2
# for the decoders with learned positions (OPT: positions from the attention mask, not from the ids the remap
# changes): their exports run with -m slow. BERT (an encoder) and Gemma 3 (a scaled embedding) differ.
@pytest.mark.parametrize("family", with_repeats_slow(FAMILIES, (*LLAMA_REPEATS, "opt")))
def test_trimmed_graph_takes_original_ids_matches_torch_and_quantizes(family, tokenizer, tmp_path):
    _, clf = _classifier(family, tokenizer)
    train, keep = _keep(tokenizer)
    size, hidden = clf.get_input_embeddings().weight.shape
    pad = tokenizer.pad_token_id
    full = tmp_path / "full.onnx"
    if family == "llama":  # one untrimmed export to compare sizes with (each export takes seconds)
        export_onnx(clf, pad_batch(train[:2], pad), full)
    trim = trim_vocabulary(clf, keep, "nearest")
    mixed = _prompts(tokenizer, UNSEEN) + train + [[size - 1, 0, 1]]  # dropped ids, up to the last one
    assert coverage(mixed, keep) < 0.9

    path = tmp_path / "model.onnx"
    export_onnx(clf, pad_batch(train[:2], pad), path)
    if family == "llama":
        # Exactly the dropped rows' floats go and the int64 remap comes.
        dropped_bytes = 4 * (size - trim.table_rows) * hidden - 8 * size
        assert _initializer_bytes(full) - _initializer_bytes(path) == dropped_bytes
        assert graph_bytes(path) < graph_bytes(full)
    expected = torch_logits(clf, mixed, pad)
    session = create_session(path, load_target("cpu"))
    require_parity(
        compare_logits(expected, run_logits(session, mixed, pad), POLICY.tolerance(POLICY.export_atol, expected))
    )
    graph = onnx.load(str(path)).graph
    assert [(i.name, i.type.tensor_type.elem_type) for i in graph.input] == [
        ("input_ids", onnx.TensorProto.INT64),
        ("attention_mask", onnx.TensorProto.INT64),
    ]
    # The small table is in the file and no float tensor has a row per id: the full table is gone.
    floats = [list(t.dims) for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT]
    assert [trim.table_rows, hidden] in floats and not any(d and d[0] == size for d in floats)

    # fp16 (--target cuda): the converter leaves the int64 remap alone; ORT's CPU provider runs the graph.
    fp16 = to_fp16(path, tmp_path / "fp16.onnx", load_target("cuda").fp16.keep_fp32_ops).path
    half = run_logits(create_session(fp16, load_target("cpu")), mixed, pad)
    require_parity(compare_logits(expected, half, POLICY.tolerance(1e-2, expected)), what="fp16 graph")
    remaps = [t for t in onnx.load(str(fp16)).graph.initializer if t.data_type == onnx.TensorProto.INT64]
    assert any(list(t.dims) == [size] for t in remaps)

    int8 = tmp_path / "int8.onnx"
    calibration = [pad_batch([s], pad) for s in train]
    to_int8(path, int8, Int8Settings(mode="static", per_channel=True), calibration)
    logits = run_logits(create_session(int8, load_target("cpu")), mixed, pad)
    assert logits.shape == expected.shape and np.isfinite(logits).all()
    quantized = onnx.load(str(int8)).graph.initializer
    eight_bit = (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
    assert any(t.data_type in eight_bit and list(t.dims) == [trim.table_rows, hidden] for t in quantized)
    assert any(t.data_type == onnx.TensorProto.INT64 and list(t.dims) == [size] for t in quantized)  # the remap


def _initializer_bytes(path):
    return sum(len(t.raw_data) for t in onnx.load(str(path)).graph.initializer)


def test_vocab_module_imports_without_torch():
    import subprocess
    import sys

    code = "import sys; import edgecut.model.vocab; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_vocab_larger_than_the_data_uses_and_many_classes_are_said_in_one_short_line(tiny_model_dirs, tmp_path):
    """--vocab 1000000 on a 400-id vocabulary silently kept only the ids seen: now a note says so. And the data
    note named every class (60 KB for 10,000 classes): it names at most ten. The pipeline is stopped as
    fine-tuning starts: both notes are written by then."""
    import csv

    from artifact_helpers import NotesUntilFineTuning, StopAtFineTuning, tiny_settings

    from edgecut import export

    data = tmp_path / "many.csv"
    with data.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        names = [f"{chr(97 + c)}topic" for c in range(12)]  # words that start differently: one head row each
        writer.writerows((f"the film {i} is number {c}", names[c]) for c in range(12) for i in range(8))

    progress = NotesUntilFineTuning()
    settings = tiny_settings(tiny_model_dirs["llama"], data, tmp_path / "out", vocab="1000000", test_size=24)
    settings = type(settings)(**{**settings.__dict__, "labels": (), "setting": "pcls"})  # the data's 12 classes
    with pytest.raises(StopAtFineTuning):
        export(settings, progress)
    (said,) = [n for n in progress.notes if n.startswith("--vocab 1000000:")]
    assert "the training data uses only" in said and "of the model's 400 token ids" in said
    (classes,) = [n for n in progress.notes if "12 classes:" in n]
    assert "'jtopic' … and 2 more" in classes and "ltopic" not in classes
