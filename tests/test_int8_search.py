"""Accuracy-aware int8/fp16: a model made sensitive to int8 on purpose triggers the candidate search, and
either a candidate within max_accuracy_drop ships or the export stops with the exit-1 QualityError."""

from pathlib import Path

import numpy as np
import pytest
from conftest import _sentences, tiny_model

from edgecut.errors import ParityError, QualityError
from edgecut.graph.precision import (
    FP16_RECIPES,
    INT8_RECIPES,
    Fp16Candidate,
    Int8Candidate,
    PrecisionChoice,
    choose_fp16,
    choose_int8,
)
from edgecut.runtime import create_session, pad_batch, run_logits
from edgecut.targets import FP16_CANDIDATES, INT8_CANDIDATES, load_target

OUTLIER = 100.0  # how much one hidden channel entering the first layer's attention is scaled up


def _export(tokenizer_dir, path: Path, outlier: float):
    """A tiny Llama classifier whose first attention input has one channel `outlier` times larger.

    The RMSNorm weight of channel 5 is multiplied and the q/k/v columns of that channel divided by the
    same factor: the fp32 function is unchanged, but one per-tensor int8 scale for that input now spends
    its range on one channel and crushes the others, as the outlier features of real LLMs do. The head is
    a random direction orthogonal to the mean hidden state, so the fp32 predictions split both ways.
    """
    import torch
    from transformers import AutoTokenizer

    from edgecut.graph.exporter import export_onnx
    from edgecut.model.classifier import make_classifier

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    model = tiny_model("llama", tok, layers=2)
    seqs = [tok(t)["input_ids"] for t, _ in _sentences(400, seed=5)]
    with torch.no_grad():
        first = model.model.layers[0]
        first.input_layernorm.weight[5] *= outlier
        for proj in (first.self_attn.q_proj, first.self_attn.k_proj, first.self_attn.v_proj):
            proj.weight[:, 5] /= outlier
    clf = make_classifier(model, tok, ["neg", "pos"], [" negative", " positive"])
    torch.manual_seed(1)
    with torch.no_grad():
        hidden = torch.stack([clf.model(torch.tensor([s])).last_hidden_state[0, -1] for s in seqs[:100]])
        mean = hidden.mean(0)
        direction = torch.randn(hidden.shape[1])
        direction -= (direction @ mean) / (mean @ mean) * mean
        clf.score.weight.zero_()
        clf.score.weight[1] = direction
    export_onnx(clf, pad_batch(seqs[:2], tok.pad_token_id), path)
    return seqs, tok.pad_token_id


@pytest.fixture(scope="module")
def sensitive(tmp_path_factory, tokenizer_dir):
    """The outlier model in fp32 ONNX, 100 calibration feeds, 300 validation prompts labelled by fp32.

    Labels are the fp32 predictions, so fp32 scores 100 % and a candidate's drop is exactly the share of
    predictions int8 flips.
    """
    path = tmp_path_factory.mktemp("sensitive") / "fp32.onnx"
    seqs, pad = _export(tokenizer_dir, path, OUTLIER)
    validation = seqs[100:400]
    labels = run_logits(create_session(path, load_target("cpu")), validation, pad).argmax(-1).tolist()
    assert 0.2 < np.mean(labels) < 0.8  # both classes predicted, or no flip could show
    calibration = [pad_batch([s], pad) for s in seqs[:100]]
    return {"path": path, "pad": pad, "validation": validation, "labels": labels, "calibration": calibration}


def _target(tmp_path, int8: str):
    path = tmp_path / "t.toml"
    path.write_text(
        'name="t"\ndescription="d"\nproviders=["CPUExecutionProvider"]\nprecision="int8"\n'
        f'[int8]\nmode="static"\nper_channel=true\n{int8}\n'
    )
    return load_target(str(path))


def test_the_recipes_cover_the_candidate_names():
    assert tuple(INT8_RECIPES) == INT8_CANDIDATES and tuple(FP16_RECIPES) == FP16_CANDIDATES
    # typed configs (not tuples), each named as its key
    assert all(isinstance(r, Int8Candidate) and r.name == n for n, r in INT8_RECIPES.items())
    assert all(isinstance(r, Fp16Candidate) and r.name == n for n, r in FP16_RECIPES.items())
    assert {r.mode for r in INT8_RECIPES.values()} == {"static", "weights"}
    assert INT8_RECIPES["static-percentile-fp32-head"].calibration == "percentile"


def test_outliers_trigger_the_search_and_a_candidate_within_budget_ships(sensitive, tmp_path):
    target = load_target("cpu-int8")
    choice = choose_int8(
        sensitive["path"],
        tmp_path,
        target,
        sensitive["calibration"],
        sensitive["validation"],
        sensitive["labels"],
        sensitive["pad"],
    )
    first = choice.candidates[0]
    assert first["name"] == "static" and not first["kept"]
    assert first["drop_points"] > target.int8.max_accuracy_drop  # plain static int8 flips predictions here
    kept = [c for c in choice.candidates if c["kept"]]
    assert [c["name"] for c in kept] == [choice.candidate] == [choice.candidates[-1]["name"]]
    assert choice.candidate != "static" and choice.drop_points <= target.int8.max_accuracy_drop
    assert choice.fp32_accuracy == 1.0 and choice.validation_rows == 300
    # what the manifest records for every candidate tried
    for record in choice.candidates:
        if "drop_points" in record:
            assert {"nodes_excluded", "validation_accuracy", "p50_ms_batch1", "bytes", "kept", "why"} <= set(record)
    assert choice.path.is_file() and choice.quantize.nodes_excluded == tuple(kept[0]["nodes_excluded"])
    # the shipped graph really scores what the record says
    logits = run_logits(create_session(choice.path, target), sensitive["validation"], sensitive["pad"])
    assert float((logits.argmax(-1) == np.asarray(sensitive["labels"])).mean()) == choice.accuracy
    # how many answers it changed against fp32 (here the labels are fp32's answers), and what that makes of
    # the drop on new data: about 1.96·√changed/rows, zero only when no answer changed
    assert choice.changed_answers == int((logits.argmax(-1) != np.asarray(sensitive["labels"])).sum())
    assert choice.drop_uncertainty_points == pytest.approx(196 * choice.changed_answers**0.5 / 300)
    record = choice.as_dict()
    assert record["changed_answers"] == choice.changed_answers
    assert record["drop_uncertainty_points"] == choice.drop_uncertainty_points


def test_the_export_line_says_the_drop_and_how_firm_it_is(tmp_path):
    def choice(changed: int) -> PrecisionChoice:
        return PrecisionChoice(tmp_path, None, "int8", "static", 0.92, 0.91, 1.0, 212, changed_answers=changed)

    assert choice(10).describe() == (
        "shipped static: validation 91.0% vs fp32 92.0% (drop +1.0 points, at most 1); 10 of 212 answers "
        "changed, so on new data the drop may land about ±2.9 points from that"
    )
    assert choice(0).describe().endswith("; none of 212 answers changed") and choice(0).drop_uncertainty_points == 0


def test_no_candidate_within_budget_is_the_exit_1_error(sensitive, tmp_path):
    target = _target(tmp_path, 'max_accuracy_drop = 0.0\ncandidates = ["static", "static-fp32-head"]')
    with pytest.raises(QualityError) as caught:
        choose_int8(
            sensitive["path"],
            tmp_path,
            target,
            sensitive["calibration"],
            sensitive["validation"],
            sensitive["labels"],
            sensitive["pad"],
        )
    message = str(caught.value)
    assert "\n" not in message and "--target cpu" in message and "max_accuracy_drop" in message
    best = min(c["drop_points"] for c in caught.value.candidates)
    assert best > 0 and f"loses {best:.1f} points" in message
    assert isinstance(caught.value, ParityError)  # the CLI maps it to exit 1, like a parity failure


@pytest.mark.parametrize("min_agreement", [0.0, 1.0])
def test_a_candidate_the_shipped_gate_would_refuse_does_not_ship(sensitive, tmp_path, min_agreement):
    """Plain static int8 flips some of the outlier model's answers. With any drop allowed it is within
    budget, so only the shipped graph's own gate (min_argmax_agreement, checked after the search) can refuse
    it: the search applies that gate too, instead of shipping a graph the export then refuses (a 30-layer
    SmolLM2 on CUDA: fp16 within 1 point, 96 % agreement, refused at the gate after the search)."""
    target = _target(
        tmp_path,
        f'max_accuracy_drop = 100.0\ncandidates = ["static"]\n[thresholds]\nmin_argmax_agreement = {min_agreement}',
    )
    search = (sensitive["calibration"], sensitive["validation"], sensitive["labels"], sensitive["pad"])
    if min_agreement == 0.0:
        choice = choose_int8(sensitive["path"], tmp_path, target, *search)
        assert choice.candidate == "static" and choice.changed_answers > 0
        return
    with pytest.raises(QualityError) as caught:
        choose_int8(sensitive["path"], tmp_path, target, *search)
    (record,) = caught.value.candidates
    assert not record["kept"] and record["argmax_agreement_fp32"] < 1.0
    assert "within budget but refused (argmax agrees with fp32 on" in str(caught.value)


def test_fp16_search_where_ort_cpu_runs_fp16(sensitive, tmp_path):
    path = tmp_path / "fp16.toml"
    keep = load_target("cuda").fp16.keep_fp32_ops
    path.write_text(
        'name="f"\ndescription="d"\nproviders=["CPUExecutionProvider"]\nprecision="fp16"\n'
        f"[fp16]\nkeep_fp32_ops={list(keep)!r}\nmax_accuracy_drop=1.0\n[thresholds]\nparity_atol=5e-2\n"
    )
    target = load_target(str(path))
    try:
        choice = choose_fp16(
            sensitive["path"], tmp_path, target, sensitive["validation"], sensitive["labels"], sensitive["pad"]
        )
    except QualityError as e:
        if any("Error" in c["why"] for c in e.candidates):
            pytest.skip(f"ONNX Runtime CPU cannot run these fp16 graphs: {e.candidates[0]['why'][:120]}")
        raise
    assert choice.precision == "fp16" and choice.drop_points <= 1.0
    assert choice.candidates[-1]["kept"] and choice.candidates[-1]["batch_max_abs_diff"] <= 5e-2
