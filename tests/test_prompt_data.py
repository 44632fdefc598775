import json

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from edgecut.errors import DataError
from edgecut.model.classifier import label_token_ids
from edgecut.model.data import DataSpec, encode_examples, load_dataset, parse_label_words, split_list
from edgecut.model.prompt import LABEL, TEXT, PromptFormat, check_template, unescape_template

TEMPLATE = "Review: {text}\nSentiment:{label}"
PROPERTY = settings(max_examples=50, deadline=None)


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


def test_texts_longer_than_the_tokenizers_limit_are_cut_without_its_warning(tiny_csv, tokenizer_dir):
    """edgecut cuts each query itself (the prompt keeps its frame), so the tokenizer's "sequence length is
    longer than the specified maximum ... indexing errors" warning would only alarm the user."""
    import logging

    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    class Kept(logging.Handler):
        def __init__(self):
            super().__init__()
            self.messages: list[str] = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    fresh = AutoTokenizer.from_pretrained(tokenizer_dir)  # the warning is given once per tokenizer object
    fresh.model_max_length = 4  # shorter than any prompt
    ds = load_dataset(DataSpec(source=str(tiny_csv), test_size=10, validation_size=5, demonstrations=False))
    room = len(fresh(PromptFormat(ds.template).render(""), verbose=False)["input_ids"])
    kept, root = Kept(), hf_logging.get_logger("transformers")
    root.addHandler(kept)
    try:
        features, cut = encode_examples(fresh, PromptFormat(ds.template, (), max_length=room + 2), ds.test)
    finally:
        root.removeHandler(kept)
    assert cut == len(ds.test) and all(len(f["input_ids"]) <= room + 2 for f in features)
    assert not [m for m in kept.messages if "longer than the specified maximum" in m]


# --- templates as typed in a shell ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("Review: {text}\\nSentiment:{label}", "Review: {text}\nSentiment:{label}"),
        ("Q:\\t{text}\\nA:{label}", "Q:\t{text}\nA:{label}"),
        ("path C:\\\\new {text}{label}", "path C:\\new {text}{label}"),  # \\n stays backslash-n
        ("keep \\x and \\r {text}{label}", "keep \\x and \\r {text}{label}"),
        ("trailing \\", "trailing \\"),
        ("Review: {text}\nSentiment:{label}", "Review: {text}\nSentiment:{label}"),  # already real
    ],
)
def test_unescape_template_turns_typed_escapes_into_characters(typed, meant):
    assert unescape_template(typed) == meant


def test_text_holding_placeholders_reaches_the_prompt_as_written():
    fmt = PromptFormat(TEMPLATE, (("a {label} demo", " negative"), ("{text} twice {text}", " positive")))
    rendered = fmt.render("I rate it {label} out of {text}")
    assert rendered == (
        "Review: a {label} demo\nSentiment: negative\n\nReview: {text} twice {text}\nSentiment: positive\n\n"
        "Review: I rate it {label} out of {text}\nSentiment:"
    )


plain = st.text(max_size=20).filter(lambda s: TEXT not in s and LABEL not in s)


@PROPERTY
@given(head=plain, middle=plain, text=st.text(max_size=40), word=st.text(max_size=10))
def test_any_template_with_text_once_and_label_last_fills_literally(head, middle, text, word):
    template = head + TEXT + middle + LABEL
    assume(template.count(TEXT) == 1 and template.count(LABEL) == 1)  # no placeholder spelt across joins
    check_template(template)
    assert PromptFormat(template).fill(text, word) == head + text + middle + word


@PROPERTY
@given(template=st.lists(st.sampled_from([TEXT, LABEL, "a", "\\", "n", "{", "}", "text"]), max_size=8).map("".join))
def test_check_template_accepts_exactly_the_valid_ones(template):
    valid = template.count(TEXT) == 1 and template.count(LABEL) == 1 and template.endswith(LABEL)
    if valid:
        check_template(template)
    else:
        with pytest.raises(DataError, match="must contain"):
            check_template(template)


@PROPERTY
@given(text=st.text(max_size=30))
def test_unescape_undoes_escaping(text):
    escaped = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
    assert unescape_template(escaped) == text
    if "\\" not in text:
        assert unescape_template(text) == text


name = st.text(alphabet=st.characters(blacklist_characters=",=", blacklist_categories=("Cs",)), max_size=8).filter(
    lambda s: s.strip()
)


@PROPERTY
@given(pairs=st.lists(st.tuples(name, name), min_size=1, max_size=6, unique_by=lambda p: p[0].strip()))
def test_label_word_pairs_parse_back_from_the_command_line(pairs):
    typed = ",".join(f"{label}={word}" for label, word in pairs)
    parsed = parse_label_words(split_list(typed))
    assert parsed == tuple((label.strip(), word.strip()) for label, word in pairs)
    assert parse_label_words(tuple(word.strip() for _, word in pairs)) is None  # plain words


# --- label words in scripts written without spaces ----------------------------------------------------------

SCRIPTS = {
    "chinese": [" 正面", " 负面"],
    "japanese": [" ポジティブ", " ネガティブ"],
    "thai": [" บวก", " ลบ", " กลาง"],
    "chinese_same_lead_byte": [" 正面", " 文字"],  # 正 and 文 both start with byte E6
}


def _pieces(tokenizer, word):
    return tokenizer(word, add_special_tokens=False)["input_ids"]


# The tiny tokenizer knows no merges for these scripts: " 正面" is "Ġ" then one token per UTF-8 byte, so
# the words part after the space (Chinese), after a shared lead byte, or after the two bytes every Thai
# letter (E0 B8 ..) and these katakana (E3 83 ..) share.
@pytest.mark.parametrize(
    ("script", "at"), [("chinese", 1), ("chinese_same_lead_byte", 2), ("japanese", 3), ("thai", 3)]
)
def test_label_words_without_spaces_get_their_first_distinguishing_token(tokenizer, script, at):
    words = SCRIPTS[script]
    assert len({_pieces(tokenizer, w)[0] for w in words}) == 1  # the old rule refused these
    ids = label_token_ids(tokenizer, words)
    assert ids == [_pieces(tokenizer, w)[at] for w in words]
    assert len(set(ids)) == len(words)


def test_ordinary_label_words_keep_their_first_token(tokenizer):
    words = [" negative", " positive"]
    assert label_token_ids(tokenizer, words) == [_pieces(tokenizer, w)[0] for w in words]


@pytest.mark.parametrize("words", [SCRIPTS["chinese"], SCRIPTS["thai"], [" negative", " positive"]])
def test_label_word_tokens_are_what_follows_the_prompt(tokenizer, words):
    # The classifier scores the position after the prompt: the word's own tokens must be exactly what
    # comes after the prompt's tokens when the word is filled in (as in a demonstration).
    fmt = PromptFormat(TEMPLATE)
    prompt = _pieces(tokenizer, fmt.render("good film"))
    for word in words:
        assert _pieces(tokenizer, fmt.fill("good film", word)) == prompt + _pieces(tokenizer, word)


def test_words_with_no_distinguishing_token_are_refused(tokenizer):
    with pytest.raises(DataError, match="' 正面' and ' 正面' share a first token"):
        label_token_ids(tokenizer, [" 负面", " 正面", " 正面"])


@pytest.mark.slow
def test_smollm2_tokenizer_gives_cjk_and_thai_words_distinct_tokens():
    from transformers import AutoTokenizer

    from edgecut.model.load import resolve_alias

    gguf = resolve_alias("smollm2-135m")
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    for words in SCRIPTS.values():
        ids = label_token_ids(tok, words)
        assert len(set(ids)) == len(words)
        fmt = PromptFormat(TEMPLATE)
        prompt = _pieces(tok, fmt.render("好电影"))
        for word in words:
            assert _pieces(tok, fmt.fill("好电影", word)) == prompt + _pieces(tok, word)
    # Japanese and Thai start with a shared "Ġ" here (the refusal before); English is unchanged.
    assert len({_pieces(tok, w)[0] for w in SCRIPTS["japanese"]}) == 1
    english = [" negative", " positive"]
    assert label_token_ids(tok, english) == [_pieces(tok, w)[0] for w in english]
