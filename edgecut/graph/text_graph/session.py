"""onnxruntime-extensions' operator library, which a session running model_text.onnx registers."""

from __future__ import annotations

from pathlib import Path

from edgecut.errors import EdgecutError


def extensions_library() -> str:
    """Path of onnxruntime-extensions' operator library, found without importing the package.

    `import onnxruntime_extensions` (0.15.2) imports transformers, tokenizers and torch when they are
    installed (for its converters); a server or the torch-free runtime needs only the compiled library.

    Raises:
        EdgecutError: onnxruntime-extensions is not installed.
    """
    import importlib.machinery
    import importlib.util

    spec = importlib.util.find_spec("onnxruntime_extensions")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            library = Path(folder) / f"_extensions_pydll{suffix}"
            if library.is_file():
                return str(library)
    raise EdgecutError("model_text.onnx needs onnxruntime-extensions: pip install onnxruntime-extensions")


def session_options():
    """onnxruntime SessionOptions with onnxruntime-extensions' operators registered, for model_text.onnx."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.register_custom_ops_library(extensions_library())
    return options
