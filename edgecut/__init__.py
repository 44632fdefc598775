"""edgecut: slim an LLM to its first N layers and ship it as an ONNX text classifier.

Importing the package is cheap on purpose: torch and transformers are imported only inside the
stages that need them, so the torch-free runtime (`edgecut.runtime`) stays torch-free.
"""

__version__ = "0.1.0"
