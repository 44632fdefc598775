"""The texts the string graph is checked on, and what onnxruntime-extensions cannot see in a text."""

# Ordinary texts the ids are checked on before a graph is written, for every supported tokenizer (and by
# `edgecut check`): spacing, punctuation, digits, accents, emoji, CJK, Greek. Each tokenizer adds its own
# (`probes`: BPE its special tokens in running text and accented Greek), and a long text forces a cut.
PROBES = (
    "a moving, beautifully acted film",
    "dull and far too long...",
    "  two  leading spaces\tand a tab\nand a newline",
    "It's 2024: 3.5/10, $12 (ugh)!",
    "Amélie's café naïveté — “quoted” façade",
    "emoji 🎉🎬 and 中文 and ελληνικα",
    "",
)
# What onnxruntime-extensions 0.15.2 cannot see: its string ops read a text as a C string, so a text ends at its
# first NUL (U+0000); the template around it stays. Byte-level BPE gives `tokenizers`' ids for every other
# code point of the first three planes (each checked between letters).
NUL = "\x00"
NUL_DIVERGENCE = (
    "a text holding NUL (U+0000) ends there for onnxruntime-extensions' string ops: model_text.onnx answers "
    "for the part before the first NUL, the id graph (edgecut predict) for the whole text; strip NUL before a "
    "request, or send token ids"
)
# The odd inputs `edgecut check` also probes a string graph with (beside PROBES): NUL and other control
# characters, a BOM, right-to-left marks, ZWJ emoji, combining accents, a 100 KB text. Texts holding NUL must
# diverge only as the manifest records (`text_model.divergent_characters`); a lone surrogate (JSON can escape
# one) is no Unicode text: both paths must refuse it (`ODD_REFUSED`).
ODD_PROBES = (
    "good\x00film",
    "\x00\x00\x00",
    "bad\x01 \x07bell \x1b[31mred\x1b[0m \x7f del \x0b\x0c\x1c\x1f",
    "\ufeffa film with a byte-order mark",
    "\u202eright-to-left override\u202c, \u200fعربي\u200e and עברית",
    "family 👩\u200d👩\u200d👧\u200d👦 flag 🏳\ufe0f\u200d🌈 skin 👍🏽",
    "combining e\u0301 a\u0308 n\u0303 and Zalgo z\u0336\u0337\u0338",
    "a long review: " + "great acting, dull plot. " * 4200,
)
ODD_REFUSED = ('"half a pair \\ud800 of surrogates"',)  # JSON texts: json.loads gives a lone surrogate
