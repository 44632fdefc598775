import copy

import pytest
import torch
from conftest import FAMILIES, tiny_model

from edgecut.errors import EdgecutError
from edgecut.model.prune import count_parameters, cut_to_first, depth, keep_layers


def _layer_state(model, index: int) -> dict[str, torch.Tensor]:
    from edgecut.model.prune import layer_list

    _, layers = layer_list(model)
    return {k: v.clone() for k, v in layers[index].state_dict().items()}


@pytest.mark.parametrize("family", FAMILIES)
def test_cut_keeps_exactly_the_first_layers(family, tokenizer):
    model = tiny_model(family, tokenizer, layers=3)
    before = [_layer_state(model, i) for i in range(3)]
    result = cut_to_first(model, 2)
    assert depth(model) == 2 and model.config.num_hidden_layers == 2
    assert result.kept_layers == (0, 1) and result.depth_before == 3
    assert result.params_after == count_parameters(model) < result.params_before
    for i in range(2):
        after = _layer_state(model, i)
        assert after.keys() == before[i].keys()
        for key in after:
            torch.testing.assert_close(after[key], before[i][key], rtol=0, atol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_slim_model_reloads_with_from_pretrained_alone(family, tokenizer, tmp_path):
    from transformers import AutoModel, AutoModelForCausalLM

    model = tiny_model(family, tokenizer, layers=3)
    cut_to_first(model, 1)
    model.save_pretrained(tmp_path)
    auto = AutoModel if family == "bert" else AutoModelForCausalLM
    reloaded = auto.from_pretrained(tmp_path).eval()
    assert reloaded.config.num_hidden_layers == 1 and depth(reloaded) == 1
    batch = tokenizer(["good movie and great cast", "bad"], return_tensors="pt", padding=True)
    with torch.no_grad():
        a, b = model(**batch), reloaded(**batch)
    first = "logits" if family != "bert" else "last_hidden_state"
    torch.testing.assert_close(getattr(a, first), getattr(b, first), rtol=0, atol=0)


def test_per_layer_config_lists_follow_the_kept_layers(tokenizer):
    model = tiny_model("gemma3_text", tokenizer, layers=3)
    kinds = list(model.config.layer_types)
    keep_layers(model, [1, 2])
    assert model.config.layer_types == kinds[1:]
    assert [layer.self_attn.layer_idx for layer in model.model.layers] == [0, 1]


@pytest.mark.parametrize("n", [0, 4, -1])
def test_layers_out_of_range_is_refused(tokenizer, n):
    model = tiny_model("llama", tokenizer, layers=3)
    snapshot = copy.deepcopy(model.state_dict())
    with pytest.raises(EdgecutError, match="out of range"):
        cut_to_first(model, n)
    assert depth(model) == 3 and model.state_dict().keys() == snapshot.keys()
