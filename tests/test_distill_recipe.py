"""benchmarks/distill_recipe.py: the distillation study a GPU runs (docs/smaller.md).

On a tiny Llama and the toy CSV: the teacher row comes first with its soft targets (logits, then the pooled
hidden state), every variant writes one row, a rerun skips what is done, and the hidden-state loss adds a
cosine term without touching edgecut's own loss once it is uninstalled.
"""

from __future__ import annotations

import json
from argparse import Namespace

import numpy as np
import pytest
from conftest import load_script


def _study():
    return load_script("benchmarks/distill_recipe.py")


def test_the_study_writes_a_teacher_then_every_variant_and_resumes(tiny_model_dirs, tiny_csv, tmp_path, capsys):
    study = _study()
    jsonl = tmp_path / "study.jsonl"
    args = Namespace(
        model=str(tiny_model_dirs["llama"]),
        data=str(tiny_csv),
        seeds="0",
        layers="1",
        variants="plain,kd-0.5-2,kdh-0.5-2,mean,mean-kd-0.5-2-aug4",
        teacher_lrs="5e-4,3e-3",
        per_class_cap=None,
        test_size=40,
        jsonl=str(jsonl),
        soft_dir=str(tmp_path / "soft"),
    )
    study.TRANSFER_COPIES = 2  # the study labels 4 copies a text; 2 keep this test's training short
    study.run(args)
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["variant"] for r in rows] == ["teacher", "plain", "kd-0.5-2", "kdh-0.5-2", "mean", "mean-kd-0.5-2-aug4"]
    teacher = rows[0]
    assert teacher["layers"] == 3 and teacher["lr"] in (5e-4, 3e-3)
    soft = np.load(teacher["soft_targets"])
    hidden_size = 32  # conftest's tiny models
    assert soft.shape[1] == 2 + hidden_size and soft.shape[0] > 100  # every training row
    # the transfer set: the teacher's logits on 2 noisy copies of every training text, learnt by that variant only
    transfer = np.load(teacher["transfer_targets"])
    assert transfer.shape == (2 * soft.shape[0], 2) and np.isfinite(transfer).all()
    assert [r["transfer_rows"] for r in rows[1:]] == [0, 0, 0, 0, 2 * soft.shape[0]]
    assert {r["pooling"] for r in rows[1:]} == {"last", "mean"}
    assert all(
        0.0 <= r["test_accuracy"] <= 1.0 and r["teacher_test_accuracy"] == teacher["test_accuracy"] for r in rows[1:]
    )

    study.run(args)  # everything is done: nothing is trained or written again
    assert len(jsonl.read_text().splitlines()) == len(rows)

    study.report([jsonl])
    table = capsys.readouterr().out
    assert "| tmp" not in table and "| 1 | kd-0.5-2 |" in table and "vs plain" in table


def test_hidden_state_loss_adds_a_cosine_term_and_uninstalls(tokenizer):
    import torch
    from conftest import tiny_model

    import edgecut.model.finetune as ft
    from edgecut.model.classifier import make_classifier

    study = _study()
    clf = make_classifier(tiny_model("llama", tokenizer), tokenizer, ["neg", "pos"], [" negative", " positive"])
    original = ft.distillation_loss
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 11, tokenizer.pad_token_id]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    labels, weight = torch.tensor([0, 1]), torch.ones(2)
    with study.HiddenStateLoss(clf, classes=2, hidden_weight=1.0) as hidden:
        out = clf(input_ids=ids, attention_mask=mask)
        pooled = study._pool_last(hidden.caught[-1], mask).detach()
        teacher_logits = torch.randn(2, 2)
        same = torch.cat([teacher_logits, pooled], dim=1)  # the teacher's hidden state equals the student's
        opposite = torch.cat([teacher_logits, -pooled], dim=1)
        base = original(out.logits, labels, teacher_logits, weight, 0.5, 2.0)
        assert ft.distillation_loss(out.logits, labels, same, weight, 0.5, 2.0).item() == pytest.approx(
            base.item(), abs=1e-5
        )
        loss = ft.distillation_loss(out.logits, labels, opposite, weight, 0.5, 2.0)
        assert loss.item() == pytest.approx(base.item() + 2.0, abs=1e-4)  # 1 - cos = 2 for opposite vectors
        loss.backward()
    assert ft.distillation_loss is original
    assert clf.model.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0
    assert not clf.score._forward_hooks and not clf._forward_pre_hooks
