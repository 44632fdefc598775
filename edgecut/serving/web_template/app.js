// The page's classifier: onnxruntime-web (WASM) runs the artifact's graph, @huggingface/tokenizers reads
// its tokenizer.json, prompt.mjs builds and cuts the prompt as edgecut's Python runtime does. Everything
// is fetched from this directory; nothing leaves the page.
import * as ort from "./vendor/onnxruntime-web/ort.wasm.min.mjs";
import { Tokenizer } from "./vendor/tokenizers/tokenizers.min.mjs";
import { PromptEncoder } from "./prompt.mjs";

const CONFIG = "edgecut-web.json";

// The big files are stored gzipped (a third of their size); the browser inflates them itself, so any
// static file server serves the page as it is.
async function fetchBytes(name) {
  const response = await fetch(name);
  if (!response.ok) throw new Error(`${name}: HTTP ${response.status}`);
  if (!name.endsWith(".gz")) return new Uint8Array(await response.arrayBuffer());
  const inflated = response.body.pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(inflated).arrayBuffer());
}

function softmax(row) {
  const top = Math.max(...row);
  const e = row.map((x) => Math.exp(x - top));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / sum);
}

async function load() {
  const config = await (await fetch(CONFIG)).json();
  const params = new URLSearchParams(location.search);
  // More than one thread needs a cross-origin isolated page (COOP/COEP headers from the server).
  const wanted = Number(params.get("threads") || (self.crossOriginIsolated ? 2 : 1));
  ort.env.wasm.numThreads = self.crossOriginIsolated ? wanted : 1;
  ort.env.wasm.wasmPaths = new URL("./vendor/onnxruntime-web/", import.meta.url).href;
  ort.env.wasm.wasmBinary = (await fetchBytes(config.wasm)).buffer;
  const [model, tokenizerBytes] = await Promise.all([fetchBytes(config.model), fetchBytes(config.tokenizer)]);
  const tokenizerJson = JSON.parse(new TextDecoder().decode(tokenizerBytes));
  const tokenizer = new Tokenizer(tokenizerJson, { clean_up_tokenization_spaces: false });
  const session = await ort.InferenceSession.create(model, { executionProviders: ["wasm"] });
  return { config, session, encoder: new PromptEncoder(tokenizer, config.prompt), threads: ort.env.wasm.numThreads };
}

const ready = load();

/** Classify one text at batch size 1: {label, scores, logits, ids, truncated, ms}. */
async function classifyOne(text) {
  const { config, session, encoder } = await ready;
  const { ids, truncated } = encoder.encode(text);
  const n = ids.length;
  const feeds = {
    input_ids: new ort.Tensor("int64", BigInt64Array.from(ids, BigInt), [1, n]),
    attention_mask: new ort.Tensor("int64", new BigInt64Array(n).fill(1n), [1, n]),
  };
  const started = performance.now();
  const output = await session.run(feeds);
  const ms = performance.now() - started;
  const logits = Array.from(output.logits.data, Number);
  const best = logits.indexOf(Math.max(...logits));
  const probabilities = softmax(logits);
  const scores = Object.fromEntries(config.labels.map((label, i) => [label, probabilities[i]]));
  return { label: config.labels[best], scores, logits, ids, truncated, ms };
}

/** Classify many texts in order (the tests and the benchmark call this). */
async function classify(texts) {
  const results = [];
  for (const text of texts) results.push(await classifyOne(text));
  return results;
}

window.classify = classify;
window.edgecutOrt = ort; // for diagnostics (benchmarks/web.py tries other graphs with it)
window.edgecutReady = ready.then(({ threads }) => ({ threads, crossOriginIsolated: self.crossOriginIsolated }));

const form = document.getElementById("form");
const input = document.getElementById("text");
const label = document.getElementById("label");
const detail = document.getElementById("detail");
const status = document.getElementById("status");

ready.then(
  ({ config, threads }) => {
    status.textContent = `ready: ${config.labels.join(" / ")} · ${threads} WASM thread(s) · runs in this tab`;
    document.getElementById("classify").disabled = false;
  },
  (error) => {
    status.textContent = `failed to load: ${error.message}`;
  },
);

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const result = await classifyOne(input.value);
  label.textContent = result.label;
  const shown = Object.entries(result.scores).map(([k, p]) => `${k} ${(100 * p).toFixed(1)}%`);
  const cut = result.truncated ? " · text cut to fit" : "";
  detail.textContent = `${shown.join(" · ")} · ${result.ids.length} tokens · ${result.ms.toFixed(1)} ms${cut}`;
});
