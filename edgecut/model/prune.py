"""Cut a model to a subset of its transformer layers (the paper: the first N), config and weights together.

The saved slim model must reload with `from_pretrained` alone, so the config's layer count and every
per-layer list (e.g. `layer_types` for sliding/full attention in Qwen, Gemma3, Mistral) are rewritten
with the kept layers, and kept layers are renumbered (`layer_idx`, used by the KV cache).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edgecut.errors import EdgecutError

# Config lists that hold one entry per layer; any other list of that length is left alone.
PER_LAYER_CONFIG_KEYS = ("layer_types", "no_rope_layers", "sliding_window_layers", "swa_layers")


@dataclass(frozen=True)
class PruneResult:
    kept_layers: tuple[int, ...]
    depth_before: int
    params_before: int
    params_after: int


def depth(model) -> int:
    return len(layer_list(model)[1])


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())  # tied weights are counted once


def layer_list(model):
    """The (parent module, attribute name) of the ModuleList that holds the transformer blocks."""
    import torch

    n = model.config.num_hidden_layers
    found = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.ModuleList)
        and len(module) == n
        and name.split(".")[-1] in ("layers", "h", "layer")
    ]
    if len(found) != 1:
        raise EdgecutError(
            f"cannot find the transformer layers of {type(model).__name__} "
            f"({len(found)} candidate lists): this architecture is not supported yet"
        )
    name, layers = found[0]
    parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
    return (parent, name.rpartition(".")[2]), layers


def keep_layers(model, indices: Sequence[int]):
    """Keep exactly the layers at `indices` (in that order) in place; returns a PruneResult."""
    import torch

    (parent, attr), layers = layer_list(model)
    total = len(layers)
    kept = tuple(indices)
    if not kept or len(set(kept)) != len(kept) or not all(0 <= i < total for i in kept):
        raise EdgecutError(f"layers to keep {list(kept)} must be distinct and within 0..{total - 1}")
    if getattr(model.config, "scale_attn_by_inverse_layer_idx", False) and kept != tuple(range(len(kept))):
        # GPT-2 fixes each attention's scale 1/(layer_idx+1) when the layer is built: a reloaded non-prefix
        # cut would scale moved layers by their new index, silently changing the model.
        raise EdgecutError(
            "this GPT-2 config sets scale_attn_by_inverse_layer_idx, so only a prefix of layers can be kept: "
            "use --select first"
        )
    before = count_parameters(model)
    new_layers = torch.nn.ModuleList([layers[i] for i in kept])
    for new_index, layer in enumerate(new_layers):
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_index
    setattr(parent, attr, new_layers)
    config = model.config
    for key in PER_LAYER_CONFIG_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, (list, tuple)) and len(value) == total:
            setattr(config, key, [value[i] for i in kept])
    config.num_hidden_layers = len(kept)  # maps to n_layer on GPT-2 via attribute_map
    return PruneResult(kept, total, before, count_parameters(model))


def cut_to_first(model, n_layers: int) -> PruneResult:
    """The paper's cut: keep layers 0..N-1 (the final norm and LM head stay).

    Raises:
        EdgecutError: N outside 1..depth.
    """
    total = depth(model)
    if not 1 <= n_layers <= total:
        raise EdgecutError(f"--layers {n_layers} is out of range: this model has {total} layers, use 1..{total}")
    return keep_layers(model, range(n_layers))
