import json

import pytest

from edgecut.data import DataSpec, encode_examples, load_dataset
from edgecut.errors import DataError
from edgecut.prompt import PromptFormat

TEMPLATE = "Review: {text}\nSentiment:{label}"


def test_prompt_puts_demonstrations_in_class_order_and_ends_at_the_label():
    fmt = PromptFormat(TEMPLATE, (("awful", " negative"), ("great", " positive")))
    assert fmt.render("fine film") == (
        "Review: awful\nSentiment: negative\n\nReview: great\nSentiment: positive\n\nReview: fine film\nSentiment:"
    )


@pytest.mark.parametrize("bad", ["no placeholders", "{label} {text}", "Review: {text}", "{text}{label}{label}"])
def test_template_must_hold_text_and_end_with_label(bad):
    with pytest.raises(DataError, match="template"):
        PromptFormat(bad)


def test_long_queries_are_cut_and_demonstrations_kept(tokenizer):
    demos = (("awful boring", " negative"), ("lovely moving", " positive"))
    room = len(tokenizer(PromptFormat(TEMPLATE, demos).render(""))["input_ids"])
    fmt = PromptFormat(TEMPLATE, demos, max_length=room + 10)
    long_text = " ".join(["good great film and the cast"] * 30)
    ids, cut = fmt.encode(
        long_text,
        lambda s: tokenizer(s)["input_ids"],
        lambda s: tokenizer(s, add_special_tokens=False)["input_ids"],
        tokenizer.decode,
    )
    assert cut and room < len(ids) <= room + 10
    text = tokenizer.decode(ids)
    assert text.startswith("Review: awful boring\nSentiment: negative\n\nReview: lovely moving\nSentiment: positive")
    assert text.endswith("\nSentiment:")
    short, cut_short = fmt.encode(
        "fine",
        lambda s: tokenizer(s)["input_ids"],
        lambda s: tokenizer(s, add_special_tokens=False)["input_ids"],
        tokenizer.decode,
    )
    assert not cut_short and tokenizer.decode(short).endswith("Review: fine\nSentiment:")


def test_demonstrations_longer_than_max_length_are_refused(tokenizer):
    fmt = PromptFormat(TEMPLATE, (("awful " * 30, " negative"),), max_length=10)

    def encode(text):
        return tokenizer(text)["input_ids"]

    with pytest.raises(DataError, match="max_length"):
        fmt.encode("good", encode, encode, tokenizer.decode)


def test_split_is_seeded_stratified_and_disjoint(tiny_csv):
    a = load_dataset(DataSpec(source=str(tiny_csv), test_size=40, validation_size=20, per_class_cap=50, seed=3))
    b = load_dataset(DataSpec(source=str(tiny_csv), test_size=40, validation_size=20, per_class_cap=50, seed=3))
    c = load_dataset(DataSpec(source=str(tiny_csv), test_size=40, validation_size=20, per_class_cap=50, seed=4))
    assert a.test == b.test and a.train == b.train and a.demonstrations == b.demonstrations
    assert a.test != c.test
    texts = [set(map(id, s)) for s in (a.train, a.validation, a.test)]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
    assert sum(ex.label == 0 for ex in a.test) == sum(ex.label == 1 for ex in a.test) == 20
    assert all(sum(ex.label == k for ex in a.train) <= 50 for k in (0, 1))
    demo_texts = {t for t, _ in a.demonstrations}
    assert not demo_texts & {ex.text for ex in a.train}
    assert [w for _, w in a.demonstrations] == [" negative", " positive"]


def test_jsonl_with_custom_columns_and_label_words(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [{"body": f"text {i}", "y": "spam" if i % 2 else "ham"} for i in range(30)]
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    ds = load_dataset(
        DataSpec(
            source=str(path),
            text_column="body",
            label_column="y",
            label_words=("normal", "junk"),
            labels=("ham", "spam"),
            test_size=6,
            validation_size=3,
        )
    )
    assert ds.labels == ["ham", "spam"] and ds.label_words == [" normal", " junk"]
    assert len(ds.test) == 6


def test_encode_examples_counts_truncated_queries(tiny_csv, tokenizer):
    ds = load_dataset(DataSpec(source=str(tiny_csv), test_size=10, validation_size=5, demonstrations=False))
    room = len(tokenizer(PromptFormat(ds.template).render(""))["input_ids"])
    fmt = PromptFormat(ds.template, (), max_length=room + 2)
    features, cut = encode_examples(tokenizer, fmt, ds.test)
    assert cut == len(ds.test) and all(len(f["input_ids"]) <= room + 2 for f in features)
