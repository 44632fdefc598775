"""Prompt building shared by training (HF tokenizer) and the runtime (`tokenizers` only).

Prompt = one demonstration per class (the paper's LM setting, optional) + the query, each filled into
the template and joined by a blank line. The label placeholder ends the template, so the query prompt
ends right where the label word would start: the classifier scores the last position.
When a prompt is too long the *query* is cut, never the demonstrations, and the same function does it
at training and at serving time so both see identical token ids.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edgecut.errors import DataError

TEXT, LABEL = "{text}", "{label}"
SEPARATOR = "\n\n"

Encode = Callable[[str], list[int]]  # text -> ids with the tokenizer's special tokens
EncodePlain = Callable[[str], list[int]]  # text -> ids, no special tokens
Decode = Callable[[Sequence[int]], str]


_ESCAPES = {"\\": "\\", "n": "\n", "t": "\t"}


def unescape_template(text: str) -> str:
    r"""A template as typed in a shell, with `\n` and `\t` turned into a newline and a tab.

    In a normal shell `--template "Review: {text}\nSentiment:{label}"` passes a backslash and an `n`,
    which would silently end up inside every prompt. `\\` is a literal backslash, so `\\n` stays the two
    characters backslash-n; any other backslash is kept as it is. Call it on user-typed templates only:
    built-in and manifest templates already hold real newlines.
    """
    return re.sub(r"\\([\\nt])", lambda m: _ESCAPES[m[1]], text)


def check_template(template: str) -> None:
    """Refuse a template the prompt cannot be built from: `{text}` once, `{label}` once and last."""
    if template.count(TEXT) != 1 or template.count(LABEL) != 1 or not template.endswith(LABEL):
        shown = template if len(template) <= 200 else template[:200] + "…"
        raise DataError(
            f"template {shown!r} must contain {TEXT} once and end with {LABEL}, "
            'e.g. "Review: {text}\\nSentiment:{label}"'
        )


@dataclass(frozen=True)
class PromptFormat:
    """How a text becomes a prompt. Stored in the artifact manifest so serving rebuilds it exactly."""

    template: str
    demonstrations: tuple[tuple[str, str], ...] = ()  # (text, label word), one per class, class order
    max_length: int = 256

    def __post_init__(self) -> None:
        check_template(self.template)

    def fill(self, text: str, label_word: str = "") -> str:
        # Split at the placeholders rather than str.replace: a review that itself contains "{label}"
        # must reach the model as written, not with a label word pasted into it.
        head, rest = self.template.split(TEXT)
        return head + text + rest[: -len(LABEL)] + label_word

    def render(self, text: str) -> str:
        demos = [self.fill(t, w) for t, w in self.demonstrations]
        return SEPARATOR.join([*demos, self.fill(text)])

    def encode(self, text: str, encode: Encode, encode_plain: EncodePlain, decode: Decode) -> tuple[list[int], bool]:
        """Token ids of the prompt for `text`, and whether the query had to be cut to fit max_length."""
        ids = encode(self.render(text))
        if len(ids) <= self.max_length:
            return ids, False
        query = encode_plain(text)
        keep = len(query) - (len(ids) - self.max_length)
        # Decoding a prefix and re-encoding can merge tokens differently; shrink until it fits.
        while keep > 0:
            ids = encode(self.render(decode(query[:keep])))
            if len(ids) <= self.max_length:
                return ids, True
            keep -= max(1, len(ids) - self.max_length)
        ids = encode(self.render(""))
        if len(ids) > self.max_length:
            raise DataError(
                f"the template and demonstrations alone take {len(ids)} tokens, more than max_length "
                f"{self.max_length}: raise --max-length or use shorter demonstrations (--no-demos)"
            )
        return ids, True

    def encode_with(self, tokenizer, text: str) -> tuple[list[int], bool]:
        """`encode` with a `tokenizers.Tokenizer` (the runtime's: no transformers), as serving encodes."""
        return self.encode(
            text,
            encode=lambda s: tokenizer.encode(s).ids,
            encode_plain=lambda s: tokenizer.encode(s, add_special_tokens=False).ids,
            decode=lambda ids: tokenizer.decode(list(ids)),
        )

    def as_dict(self) -> dict:
        return {
            "template": self.template,
            "demonstrations": [{"text": t, "label_word": w} for t, w in self.demonstrations],
            "max_length": self.max_length,
            "separator": SEPARATOR,
        }

    @classmethod
    def from_dict(cls, d: dict) -> PromptFormat:
        demos = tuple((x["text"], x["label_word"]) for x in d.get("demonstrations", []))
        return cls(template=d["template"], demonstrations=demos, max_length=int(d["max_length"]))
