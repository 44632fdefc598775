// `edgecut deploy --web` runs this with Node before it writes the page: the prompt ids that prompt.mjs and
// the vendored tokenizer give for the probe texts, so a tokenizer the JavaScript library reproduces
// differently is refused at deploy time rather than found wrong in a browser.
// Usage: node probe.mjs TOKENIZERS_MJS REQUEST_JSON  (request: {tokenizer, prompt, texts}); prints JSON.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { PromptEncoder } from "./prompt.mjs";

const [libPath, requestPath] = process.argv.slice(2);
const { Tokenizer } = await import(pathToFileURL(libPath).href);
const request = JSON.parse(readFileSync(requestPath, "utf8"));
const tokenizerJson = JSON.parse(readFileSync(request.tokenizer, "utf8"));
const encoder = new PromptEncoder(new Tokenizer(tokenizerJson, { clean_up_tokenization_spaces: false }), request.prompt);
const out = request.texts.map((t) => {
  const { ids, truncated } = encoder.encode(t);
  return { ids, truncated };
});
process.stdout.write(JSON.stringify(out));
