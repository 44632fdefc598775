"""Which transformer layers to keep: the paper's first N, or a layer-redundancy score on calibration prompts.

- `first` (the paper, default): layers 0..N-1; needs no data.
- `block-influence` (ShortGPT): BI_i = 1 - mean cos(h_in, h_out) of layer i over every real token of the
  calibration prompts; keep the N layers that change the residual stream most.
- `angular` (Gromov et al.): drop the contiguous block of L-N layers whose input and output are closest,
  arccos(cos(x_l, x_{l+L-N}))/pi at each prompt's last real token, averaged; keep what is around it.

Hidden states come from forward hooks on the layer modules, not from `output_hidden_states`: most HF
decoders put the final norm on the last element of `hidden_states`, which would make the last layer look
far more influential than it is. Hooks give every layer's true input and output in every family.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edgecut.errors import EdgecutError

METHODS = ("first", "block-influence", "angular")


@dataclass(frozen=True)
class Selection:
    """The layers to keep and the evidence for them (recorded in the manifest)."""

    method: str
    kept: tuple[int, ...]  # sorted layer indices to keep
    scores: tuple[float, ...]  # per-layer BI (block-influence), per-start angular distance (angular), () for first


def select_layers(
    model,
    n_layers: int,
    method: str = "first",
    calibration: Sequence[Sequence[int]] | None = None,
    pad_id: int | None = None,
    batch_size: int = 8,
) -> Selection:
    """Choose `n_layers` layers of `model` (a HF causal LM or base encoder, before cutting) to keep.

    Args:
        model: the full model; it is run (in eval mode, no grad) but not changed.
        n_layers: N, how many layers to keep (1..depth).
        method: one of METHODS.
        calibration: token id lists (a sample of the training prompts); needed by all but `first`.
        pad_id: id to right-pad batches with (masked out, so any valid id works); default the config's, else 0.
        batch_size: calibration prompts per forward pass.

    Returns:
        A Selection whose `kept` goes straight to `prune.keep_layers`.

    Raises:
        EdgecutError: unknown method, N outside 1..depth, or no (or empty) calibration prompts.
    """
    from edgecut.model.prune import depth

    if method not in METHODS:
        raise EdgecutError(f"unknown layer selection '{method}': use one of {', '.join(METHODS)}")
    total = depth(model)
    if not 1 <= n_layers <= total:
        raise EdgecutError(f"--layers {n_layers} is out of range: this model has {total} layers, use 1..{total}")
    if method == "first":
        return Selection(method, tuple(range(n_layers)), ())
    if not calibration:
        raise EdgecutError(f"--select {method} needs calibration prompts: pass a sample of the training prompts")
    if any(len(s) == 0 for s in calibration):
        raise EdgecutError("a calibration prompt has no tokens: drop empty prompts from the calibration sample")
    if pad_id is None:
        pad_id = getattr(model.config, "pad_token_id", None) or 0
    cos_sum, tokens, last = _layer_statistics(model, calibration, pad_id, max(1, batch_size))
    if method == "block-influence":
        scores = tuple(1.0 - s / tokens for s in cos_sum)
        # Highest BI first; ties go to the earlier layer so the choice is deterministic.
        best = sorted(range(total), key=lambda i: (-scores[i], i))[:n_layers]
        return Selection(method, tuple(sorted(best)), scores)
    span = total - n_layers  # the dropped block's length
    scores = tuple(_angular_distance(last[start], last[start + span]) for start in range(n_layers + 1))
    start = min(range(len(scores)), key=lambda i: (scores[i], i))
    kept = tuple(range(start)) + tuple(range(start + span, total))
    return Selection(method, kept, scores)


def _layer_statistics(model, calibration: Sequence[Sequence[int]], pad_id: int, batch_size: int):
    """Run the calibration prompts once, hooking every layer.

    Returns (cos_sum, tokens, last): per layer the sum over real tokens of cos(h_in, h_out), the number of
    real tokens, and for each of the L+1 residual-stream points (layer i's input; the last layer's output
    at index L) the [prompts, hidden] float32 states at each prompt's last real token.
    """
    import torch

    from edgecut.model.prune import layer_list
    from edgecut.runtime import pad_batch

    _, layers = layer_list(model)
    total = len(layers)
    cos_sum = [0.0] * total
    last: list[list[torch.Tensor]] = [[] for _ in range(total + 1)]
    batch: dict[str, torch.Tensor] = {}  # the current batch's mask and last-token positions, for the hooks

    def hook(index: int):
        def record(module, args, kwargs, output):
            h_in = (args[0] if args else kwargs["hidden_states"]).float()
            h_out = (output[0] if isinstance(output, (tuple, list)) else output).float()
            cos = torch.nn.functional.cosine_similarity(h_in, h_out, dim=-1)  # [B, T]
            cos_sum[index] += cos[batch["mask"]].double().sum().item()
            rows = torch.arange(h_in.shape[0], device=h_in.device)
            last[index].append(h_in[rows, batch["last"]].cpu())
            if index == total - 1:
                last[total].append(h_out[rows, batch["last"]].cpu())

        return record

    device = next(model.parameters()).device
    handles = [layer.register_forward_hook(hook(i), with_kwargs=True) for i, layer in enumerate(layers)]
    was_training = model.training
    model.eval()  # dropout would make the scores random
    try:
        with torch.no_grad():
            for start in range(0, len(calibration), batch_size):
                feed = {
                    k: torch.from_numpy(v).to(device)
                    for k, v in pad_batch(calibration[start : start + batch_size], pad_id).items()
                }
                batch["mask"] = feed["attention_mask"].bool()
                batch["last"] = feed["attention_mask"].sum(-1) - 1  # right-padded: last real position
                model(**feed)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    tokens = sum(len(s) for s in calibration)
    return cos_sum, tokens, [torch.cat(states) for states in last]


def _angular_distance(a, b) -> float:
    """Mean over rows of arccos(cos(a, b)) / pi, in [0, 1]."""
    import math

    import torch

    cos = torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=-1).clamp(-1.0, 1.0)
    return float(torch.arccos(cos).mean()) / math.pi
