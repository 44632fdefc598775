"""edgecut: slim an LLM to its first N layers and ship it as an ONNX text classifier.

Importing the package is cheap on purpose: torch and transformers are imported only inside the
stages that need them, so the torch-free runtime (`edgecut.runtime`) stays torch-free.

The package follows the road a model travels: `edgecut.model` (load, cut and fine-tune it in torch),
`edgecut.graph` (export it to ONNX, optimise and quantize it while parity holds), `edgecut.artifacts` (write
and check the artifact), `edgecut.serving` (Triton, the browser, phones, Ray Data) and `edgecut.sweeps` (which
N, against which baselines). The top level keeps the entry points (`pipeline`, `runtime`, `cli`) and what
every stage shares (settings, errors, progress, targets, signals, files).
"""

import os

# No network call the user did not ask for: onnxruntime >= 1.29 sends usage telemetry on Linux unless this
# is set before it initialises (microsoft/onnxruntime#27379; disable_telemetry_events() afterwards does not
# stop it). Every entry point (CLI, `import edgecut`, `edgecut.runtime` in a server) imports this package
# first. A value the user set is kept.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__version__ = "0.2.0"

# The Python API: `from edgecut import ExportSettings, export` (torch is imported only when export runs).
from edgecut.pipeline import ExportResult, ExportSettings, Progress, export  # noqa: E402

__all__ = ["ExportResult", "ExportSettings", "Progress", "__version__", "export"]
