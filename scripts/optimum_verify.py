"""Load an edgecut artifact with Hugging Face Optimum and compare its logits with golden.npz.

Runs in the separate optimum virtual environment that scripts/check_optimum.sh creates (optimum-onnx
pins transformers 4.57, edgecut needs 5.x), so it imports nothing from edgecut.

    .venv-optimum/bin/python scripts/optimum_verify.py ARTIFACT_DIR

Prints one line per check and a JSON summary; exits 1 when a required check fails.
"""

from __future__ import annotations

import json
import sys
from importlib import metadata
from pathlib import Path

import numpy as np

PACKAGES = ("optimum-onnx", "optimum", "transformers", "onnxruntime", "tokenizers", "torch")


def verify(directory: Path) -> dict:
    from optimum.onnxruntime import ORTModelForSequenceClassification

    manifest = json.loads((directory / "edgecut.json").read_text(encoding="utf-8"))
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    result = {"artifact": str(directory), "versions": versions, "checks": {}}
    checks = result["checks"]

    model = ORTModelForSequenceClassification.from_pretrained(directory, provider="CPUExecutionProvider")
    labels = {int(k): v for k, v in model.config.id2label.items()}
    checks["load"] = {"passed": True, "required": True, "detail": f"{type(model).__name__}, {model.providers[0]}"}
    want = dict(enumerate(manifest["labels"]))
    checks["labels"] = {"passed": labels == want, "required": True, "detail": f"id2label {labels}, manifest {want}"}

    golden = np.load(directory / manifest["golden"]["file"])
    out = model(input_ids=golden["input_ids"], attention_mask=golden["attention_mask"])
    logits = np.asarray(out.logits)
    diff = float(np.abs(logits - golden["logits"]).max())
    same = bool((logits.argmax(-1) == golden["logits"].argmax(-1)).all())
    atol = float(manifest["golden"]["atol"])
    checks["logits"] = {
        "passed": diff <= atol and same,
        "required": True,
        "detail": f"max |Δlogit| {diff:.2g} vs golden (atol {atol:g}), argmax identical: {same}",
    }
    checks["tokenizer"] = _tokenizer(directory, manifest)
    result["passed"] = all(c["passed"] for c in checks.values() if c["required"])
    return result


def _tokenizer(directory: Path, manifest: dict) -> dict:
    """AutoTokenizer must load the artifact's tokenizer files and give the ids edgecut's runtime gives."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(directory)
    except (ValueError, OSError, KeyError) as e:
        config = json.loads((directory / "tokenizer_config.json").read_text(encoding="utf-8"))
        return {
            "passed": False,
            "required": True,
            "detail": f"AutoTokenizer cannot load it ({e}); tokenizer_config.json has "
            f"tokenizer_class={config.get('tokenizer_class')!r}",
        }
    reference = Tokenizer.from_file(str(directory / "tokenizer.json"))
    template = manifest["prompt"]["template"]
    texts = [template.replace("{text}", t).replace("{label}", "") for t in ("a good film", "dull, boring plot")]
    same = all(tok(t)["input_ids"] == reference.encode(t).ids for t in texts)
    return {"passed": same, "required": True, "detail": f"{type(tok).__name__}, same ids as tokenizers: {same}"}


def main() -> int:
    if len(sys.argv) != 2 or not (Path(sys.argv[1]) / "edgecut.json").is_file():
        print("usage: optimum_verify.py ARTIFACT_DIR (a directory written by `edgecut export`)", file=sys.stderr)
        return 2
    result = verify(Path(sys.argv[1]))
    for name, check in result["checks"].items():
        mark = "ok  " if check["passed"] else ("FAIL" if check["required"] else "WARN")
        print(f"{mark} {name}: {check['detail']}")
    print(json.dumps(result))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
