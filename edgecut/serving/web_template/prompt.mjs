// The prompt of an edgecut artifact, built and cut exactly as edgecut.model.prompt.PromptFormat.encode does:
// one demonstration per class, then the query, each filled into the template and joined by the separator;
// a prompt over max_length has its *query* cut (decode a prefix of its tokens, re-encode, shrink until it
// fits), never the demonstrations. Shared by the page (app.js) and `edgecut deploy --web`'s Node probe.
const TEXT = "{text}";
const LABEL = "{label}";

export class PromptEncoder {
  /** tokenizer: a @huggingface/tokenizers Tokenizer; prompt: the manifest's "prompt" object. */
  constructor(tokenizer, prompt) {
    this.tokenizer = tokenizer;
    this.template = prompt.template;
    this.demonstrations = prompt.demonstrations.map((d) => [d.text, d.label_word]);
    this.maxLength = prompt.max_length;
    this.separator = prompt.separator ?? "\n\n";
    const at = this.template.indexOf(TEXT);
    this.head = this.template.slice(0, at);
    const rest = this.template.slice(at + TEXT.length);
    this.tail = rest.slice(0, rest.length - LABEL.length);
  }

  // Split at the placeholders, as PromptFormat.fill: a text that contains "{label}" stays as written.
  fill(text, labelWord = "") {
    return this.head + text + this.tail + labelWord;
  }

  render(text) {
    const demos = this.demonstrations.map(([t, w]) => this.fill(t, w));
    return [...demos, this.fill(text)].join(this.separator);
  }

  ids(text) {
    return Array.from(this.tokenizer.encode(text).ids, Number);
  }

  plainIds(text) {
    return Array.from(this.tokenizer.encode(text, { add_special_tokens: false }).ids, Number);
  }

  // Python's tokenizers decode: special tokens skipped, no clean-up of spaces; an empty list is "".
  decode(ids) {
    if (ids.length === 0) return "";
    return this.tokenizer.decode(ids, { skip_special_tokens: true, clean_up_tokenization_spaces: false });
  }

  /** {ids, truncated}: the prompt's token ids for `text`, and whether its query was cut to fit. */
  encode(text) {
    let ids = this.ids(this.render(text));
    if (ids.length <= this.maxLength) return { ids, truncated: false };
    const query = this.plainIds(text);
    let keep = query.length - (ids.length - this.maxLength);
    while (keep > 0) {
      ids = this.ids(this.render(this.decode(query.slice(0, keep))));
      if (ids.length <= this.maxLength) return { ids, truncated: true };
      keep -= Math.max(1, ids.length - this.maxLength);
    }
    ids = this.ids(this.render(""));
    if (ids.length > this.maxLength) {
      throw new Error(`the template and demonstrations alone take ${ids.length} tokens, more than max_length`);
    }
    return { ids, truncated: true };
  }
}
