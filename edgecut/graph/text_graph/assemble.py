"""model_text.onnx put together: the prompt, the tokenizer family's pieces, the cut of a too-long query,
padding, then the artifact's classifier with a string label."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecut.errors import ArtifactError
from edgecut.graph.text_graph.families import spec_for
from edgecut.graph.text_graph.nodes import CONTRIB, Nodes, const
from edgecut.graph.text_graph.parity import check_ids
from edgecut.graph.text_graph.probes import NUL
from edgecut.graph.text_graph.spec import TokenizerSpec

TEXT_MODEL = "model_text.onnx"


@dataclass(frozen=True)
class TextGraphResult:
    path: Path  # the written model_text.onnx
    tokenizer: str  # what the graph tokenizes with, e.g. "BPE/ByteLevel via GPT2Tokenizer"
    external_data: str | None  # the weights file beside it, when the model is too large to embed
    max_length: int
    checked_texts: int  # texts whose in-graph ids were compared with `tokenizers` before writing
    known_divergences: str | None = None  # inputs on which the graph's ids differ from `tokenizers`'
    divergent_characters: tuple[str, ...] = (NUL,)  # a text holding one of these may get another answer


def build_text_graph(artifact_dir: Path, destination: Path) -> TextGraphResult:
    """Write a string-input graph for an existing artifact (its manifest, tokenizer.json and model file).

    Args:
        artifact_dir: the artifact `edgecut export` wrote.
        destination: where to write the graph (usually `artifact_dir / "model_text.onnx"`, or a Triton
            model's version directory); a large model's weights go to `destination.name + ".data"` beside it.

    Raises:
        ArtifactError: the artifact is unreadable or its tokenizer.json/model file is missing.
        UnsupportedTokenizerError: the tokenizer is neither byte-level BPE nor uncased WordPiece, or the
            graph's ids differ from `tokenizers`' on a probe text (the message names the type and the text).
    """
    import onnx

    artifact_dir, destination = Path(artifact_dir), Path(destination)
    manifest, front, spec, checked = checked_front(artifact_dir)
    classifier = onnx.load(str(artifact_dir / manifest["model_file"]))
    merged = merge(front, classifier, [str(label) for label in manifest["labels"]])

    size = sum(len(t.raw_data) for t in merged.graph.initializer)
    external = destination.name + ".data" if size >= 2_000_000_000 else None
    destination.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(merged, str(destination), save_as_external_data=external is not None, location=external)
    max_length = int(manifest["prompt"]["max_length"])
    return TextGraphResult(
        destination,
        spec.description,
        external,
        max_length,
        checked,
        spec.known_divergences,
        spec.divergent_characters,
    )


def check_tokenizer(tokenizer_json: Path) -> str:
    """What the string graph would tokenize with, from tokenizer.json alone (no graph is built).

    Cheap: lets `export --with-tokenizer` refuse an unsupported tokenizer before training.

    Raises:
        UnsupportedTokenizerError: neither byte-level BPE nor uncased WordPiece (the message names the type).
    """
    return spec_for(json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))).description


def build_front_graph(artifact_dir: Path):
    """Only the text side of model_text.onnx, as an onnx.ModelProto: `text` [N] string in, `input_ids` and
    `attention_mask` [N, T] int64 (right-padded with pad_token_id) and `truncated` [N] bool out.

    For clients that run the id graph themselves, and for timing the in-graph tokenizer on its own.
    Raises as build_text_graph does.
    """
    return checked_front(Path(artifact_dir))[1]


def checked_front(artifact_dir: Path):
    """(manifest, front graph, tokenizer spec, number of texts checked) for an artifact."""
    import onnx

    from edgecut.artifacts.manifest import read_manifest
    from edgecut.model.prompt import PromptFormat

    manifest = read_manifest(artifact_dir)
    tokenizer_path = artifact_dir / "tokenizer.json"
    if not tokenizer_path.is_file():
        raise ArtifactError(f"{tokenizer_path} is missing: the artifact is incomplete; re-export it")
    spec = spec_for(json.loads(tokenizer_path.read_text(encoding="utf-8")))
    prompt = PromptFormat.from_dict(manifest["prompt"])
    header = onnx.load(str(artifact_dir / manifest["model_file"]), load_external_data=False)
    opset = {o.domain: o.version for o in header.opset_import}.get("", 0) or 0
    if opset < 18:
        raise ArtifactError(
            f"{manifest['model_file']} uses opset {opset}; the string graph needs 18 or newer: re-export"
        )
    front = front_graph(spec, prompt, int(manifest["pad_token_id"]), opset, header.ir_version)
    return manifest, front, spec, check_ids(front, tokenizer_path, prompt, spec)


def front_graph(spec: TokenizerSpec, prompt, pad_id: int, opset: int, ir_version: int):
    """text [N] -> input_ids, attention_mask [N, T] int64 and truncated [N] bool, as PromptFormat.encode.

    The tokenizer's own pieces (encode a batch or one row, encode_plain, decode) come from the spec.
    """
    from onnx import TensorProto, helper

    marker = "\x00edgecut-text\x00"
    prefix, suffix = prompt.render(marker).split(marker)
    limit = prompt.max_length
    inits = [const(f"text/{k}", [v]) for k, v in {"PREFIX": prefix, "SUFFIX": suffix}.items()]
    inits += [
        const("text/MAX", np.array(limit, dtype=np.int64)),
        const("text/PAD", np.array(pad_id, dtype=np.int64)),
        const("text/ZERO", np.array(0, dtype=np.int64)),
        const("text/ONE", np.array(1, dtype=np.int64)),
        const("text/AXIS1", np.array([1], dtype=np.int64)),
        const("text/AXIS0", np.array([0], dtype=np.int64)),
        const("text/FLAT", np.array([-1], dtype=np.int64)),
        const("text/ZERO1", np.array([0], dtype=np.int64)),
        *spec.initializers(),
    ]

    def render(g: Nodes, text: str) -> str:
        """PREFIX + text + SUFFIX for a [n] string tensor (StringConcat needs equal shapes)."""
        shape = g("Shape", [text])
        pre = g("Expand", ["text/PREFIX", shape])
        suf = g("Expand", ["text/SUFFIX", shape])
        return g("StringConcat", [g("StringConcat", [pre, text], domain=CONTRIB), suf], domain=CONTRIB)

    def length_of(g: Nodes, text_1: str) -> str:
        """Token count of the prompt for one text ([1] string), as a scalar."""
        return g("Size", [spec.encode_one(g, render(g, text_1))])

    main = Nodes("text")  # the model's builder; each subgraph's shares its counter
    rendered = render(main, "text")
    ids, mask = spec.encode(main, rendered)
    lengths = main("ReduceSum", [mask, "text/AXIS1"], keepdims=0)
    truncated = main("Greater", [lengths, "text/MAX"])
    longest = main("ReduceMax", [lengths], keepdims=0)
    any_cut = main("Greater", [longest, "text/MAX"])

    # --- rows too long: cut each one's query as PromptFormat.encode does, in a Loop over the rows -------
    row = main.sub("text/row")
    i = "text/row/i"
    index1 = row("Reshape", [i, "text/FLAT"])
    text_1 = row("Gather", ["text", index1], axis=0)
    length = row("Gather", [lengths, i], axis=0)
    is_cut = row("Gather", [truncated, i], axis=0)

    keep_ids = main.sub("text/row/fits")  # this row fits: its ids as they are, cut to its length
    whole = keep_ids("Gather", [ids, i], axis=0)
    whole = keep_ids("Slice", [whole, "text/ZERO1", keep_ids("Reshape", [length, "text/FLAT"]), "text/AXIS0"])

    cut = main.sub("text/row/cut")  # this row is too long: shrink the query until the prompt fits
    query = spec.encode_plain(cut, text_1)
    keep0 = cut("Sub", [cut("Size", [query]), cut("Sub", [length, "text/MAX"])])
    go0 = cut("Greater", [keep0, "text/ZERO"])
    body = main.sub("text/row/cut/shrink")
    k, cond_in = "text/row/cut/shrink/k", "text/row/cut/shrink/cond"
    prefix_ids = body("Slice", [query, "text/ZERO1", body("Reshape", [k, "text/FLAT"]), "text/AXIS0"])
    n = length_of(body, spec.decode(body, prefix_ids))
    fits = body("LessOrEqual", [n, "text/MAX"])
    step = body("Max", [body("Sub", [n, "text/MAX"]), "text/ONE"])
    k_next = body("Where", [fits, k, body("Sub", [k, step])])
    go = body("And", [body("Not", [fits]), body("Greater", [k_next, "text/ZERO"])])
    go = body("Identity", [go])
    k_out = body("Identity", [k_next])
    scalar_i64 = helper.make_tensor_value_info
    loop_body = helper.make_graph(
        body.nodes,
        "shrink",
        [
            scalar_i64("text/row/cut/shrink/iter", TensorProto.INT64, []),
            scalar_i64(cond_in, TensorProto.BOOL, []),
            scalar_i64(k, TensorProto.INT64, []),
        ],
        [scalar_i64(go, TensorProto.BOOL, []), scalar_i64(k_out, TensorProto.INT64, [])],
    )
    k_final = cut("Loop", ["", go0, keep0], body=loop_body)
    k_final = cut("Max", [k_final, "text/ZERO"])  # keep <= 0: the query goes entirely (render(""))
    kept = cut("Slice", [query, "text/ZERO1", cut("Reshape", [k_final, "text/FLAT"]), "text/AXIS0"])
    final_ids = spec.encode_one(cut, render(cut, spec.decode(cut, kept)))

    tensor = helper.make_tensor_value_info
    row_ids = row(
        "If",
        [is_cut],
        then_branch=helper.make_graph(cut.nodes, "cut", [], [tensor(final_ids, TensorProto.INT64, [None])]),
        else_branch=helper.make_graph(keep_ids.nodes, "fits", [], [tensor(whole, TensorProto.INT64, [None])]),
    )
    row_len = row("Size", [row_ids])
    room = row("Reshape", [row("Sub", ["text/MAX", row_len]), "text/FLAT"])
    padded_row = row("Pad", [row_ids, row("Concat", ["text/ZERO1", room], axis=0), "text/PAD"])
    cond_row = row("Identity", ["text/row/cond"])
    row_graph = helper.make_graph(
        row.nodes,
        "row",
        [tensor(i, TensorProto.INT64, []), tensor("text/row/cond", TensorProto.BOOL, [])],
        [
            tensor(cond_row, TensorProto.BOOL, []),
            tensor(padded_row, TensorProto.INT64, [None]),
            tensor(row_len, TensorProto.INT64, []),
        ],
    )
    rows = main.sub("text/rows")
    n_rows = rows("Shape", ["text"])
    n_rows = rows("Reshape", [n_rows, rows("Constant", [], value=helper.make_tensor("v", TensorProto.INT64, [0], []))])
    true = rows("Constant", [], value=helper.make_tensor("v", TensorProto.BOOL, [], [True]))
    all_ids, all_lens = rows("Loop", [n_rows, true], 2, body=row_graph)
    width = rows("Reshape", [rows("ReduceMax", [all_lens], keepdims=0), "text/FLAT"])
    cut_ids = rows("Slice", [all_ids, "text/ZERO1", width, "text/AXIS1"])
    positions = rows("Range", ["text/ZERO", rows("ReduceMax", [all_lens], keepdims=0), "text/ONE"])
    cut_mask = rows(
        "Cast", [rows("Less", [positions, rows("Unsqueeze", [all_lens, "text/AXIS1"])])], to=TensorProto.INT64
    )

    plain = main.sub("text/plain")  # no row too long: the batch's ids as they are
    plain_ids = plain("Identity", [ids])
    plain_mask = plain("Identity", [mask])

    two_d = [None, None]
    batch_ids, batch_mask = main(
        "If",
        [any_cut],
        2,
        then_branch=helper.make_graph(
            rows.nodes,
            "rows_cut",
            [],
            [tensor(cut_ids, TensorProto.INT64, two_d), tensor(cut_mask, TensorProto.INT64, two_d)],
        ),
        else_branch=helper.make_graph(
            plain.nodes,
            "rows_fit",
            [],
            [tensor(plain_ids, TensorProto.INT64, two_d), tensor(plain_mask, TensorProto.INT64, two_d)],
        ),
    )
    # the tokenizer pads with 0; the classifier was validated on pad_token_id padding
    real = main("Equal", [batch_mask, "text/ONE"])
    main.add(helper.make_node("Where", [real, batch_ids, "text/PAD"], ["input_ids"], name="text/input_ids"))
    main.add(helper.make_node("Identity", [batch_mask], ["attention_mask"], name="text/attention_mask"))
    main.add(helper.make_node("Identity", [truncated], ["truncated"], name="text/truncated"))
    graph = helper.make_graph(
        main.nodes,
        "edgecut_text_front",
        [tensor("text", TensorProto.STRING, ["batch"])],
        [
            tensor("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            tensor("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
            tensor("truncated", TensorProto.BOOL, ["batch"]),
        ],
        initializer=inits,
    )
    # ai.onnx.ml for WordPiece's LabelEncoder (version 2 brought string keys to int64 values)
    opsets = [helper.make_opsetid("", opset), helper.make_opsetid(CONTRIB, 1), helper.make_opsetid("ai.onnx.ml", 3)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=ir_version, producer_name="edgecut")


def merge(front, classifier, labels: list[str]):
    """The front graph feeding the classifier, plus a string `label` output (argmax over the classes).

    A plain union of the two graphs rather than onnx.compose.merge_models: that one runs the ONNX checker,
    which refuses ORT's own fused ops in the default domain (SimplifiedLayerNormalization after the
    `ort-offline` pass). The front graph's names all start with "text/", so they cannot clash.
    """
    from onnx import TensorProto, helper

    g = classifier.graph
    mine = {o for n in front.graph.node for o in n.output} | {i.name for i in front.graph.initializer}
    theirs = {o for n in g.node for o in n.output} | {i.name for i in g.initializer}
    clash = (mine & theirs) - {"input_ids", "attention_mask"}
    if clash or {i.name for i in g.input} != {"input_ids", "attention_mask"} or "logits" not in theirs:
        raise ArtifactError(
            "the artifact's graph does not have the signature input_ids, attention_mask -> logits "
            f"(or reuses the names {sorted(clash)[:3]}): re-export it"
        )
    nodes = [*front.graph.node, *g.node]
    nodes += [
        helper.make_node("ArgMax", ["logits"], ["text/best"], name="text/best", axis=1, keepdims=0),
        helper.make_node("Gather", ["text/LABELS", "text/best"], ["label"], name="text/label", axis=0),
    ]
    logits = next(o for o in g.output if o.name == "logits")
    graph = helper.make_graph(
        nodes,
        "edgecut_text",
        list(front.graph.input),
        [
            logits,
            helper.make_tensor_value_info("label", TensorProto.STRING, ["batch"]),
            next(o for o in front.graph.output if o.name == "truncated"),
        ],
        initializer=[*front.graph.initializer, *g.initializer, const("text/LABELS", labels)],
        value_info=list(g.value_info),
    )
    opsets = {o.domain: o.version for o in [*classifier.opset_import, *front.opset_import]}
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()],
        ir_version=classifier.ir_version,
        producer_name="edgecut",
    )
    model.functions.extend(classifier.functions)
    return model
