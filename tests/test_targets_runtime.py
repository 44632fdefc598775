import subprocess
import sys

import pytest

from edgecut.errors import ProviderUnavailableError, TargetError
from edgecut.runtime import check_session_providers, check_target_available, preload_gpu_libraries
from edgecut.targets import available_targets, check_reported_provider_options, fp32_target_for, load_target


@pytest.mark.parametrize("name", sorted(available_targets()))
def test_every_shipped_target_loads(name):
    target = load_target(name)
    assert target.name == name and target.providers and target.precision in ("fp32", "fp16", "int8")


def test_a_refused_reduced_precision_points_to_fp32_on_the_same_provider():
    # the fp16/int8 search's error names where to go: a GPU user stays on the GPU
    fallback = {name: fp32_target_for(load_target(name)) for name in ("cpu-int8", "cuda", "tensorrt")}
    assert fallback == {"cpu-int8": "cpu", "cuda": "cuda-fp32", "tensorrt": "cpu"}
    fp32 = load_target("cuda-fp32")
    assert fp32.precision == "fp32" and fp32.providers == ("CUDAExecutionProvider",)
    assert fp32.provider_options["CUDAExecutionProvider"]["use_tf32"] == 0  # fp32 means fp32, not TF32


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (
            'name="x"\ndescription="d"\nproviders=["CPUExecutionProvider"]\nprecision="fp32"\nspeed=1\n',
            "unknown key 'speed'",
        ),
        (
            'name="x"\ndescription="d"\nproviders="CPUExecutionProvider"\nprecision="fp32"\n',
            "'providers' must be a list",
        ),
        ('name="x"\ndescription="d"\nproviders=["FooExecutionProvider"]\nprecision="fp32"\n', "unknown provider"),
        ('name="x"\ndescription="d"\nproviders=["CPUExecutionProvider"]\nprecision="fp8"\n', "precision"),
        ('name="x"\nproviders=["CPUExecutionProvider"]\nprecision="fp32"\n', "missing required key 'description'"),
        (
            'name="x"\ndescription="d"\nproviders=["CPUExecutionProvider"]\nprecision="fp32"\n[thresholds]\natol=1\n',
            "thresholds.atol",
        ),
        ("name = [", "not valid TOML"),
    ],
)
def test_schema_rejects_bad_target_files(body, match, tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(body)
    with pytest.raises(TargetError, match=match):
        load_target(str(path))


def test_own_target_file_by_path(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(
        'name="mine"\ndescription="d"\nproviders=["CPUExecutionProvider"]\nprecision="fp32"\n'
        'graph_optimization="basic"\n[thresholds]\nparity_atol=1e-5\n'
    )
    target = load_target(str(path))
    assert target.graph_optimization == "basic" and target.parity_atol == 1e-5


def test_missing_provider_is_refused_before_any_session():
    with pytest.raises(ProviderUnavailableError, match="onnxruntime-gpu"):
        check_target_available(load_target("cuda"), available=["CPUExecutionProvider"])
    check_target_available(load_target("cpu"), available=["CPUExecutionProvider"])


def test_silent_cpu_fallback_is_refused():
    # onnxruntime-gpu on a machine without a working GPU starts the session on CPU without a word.
    with pytest.raises(ProviderUnavailableError, match="started the session on CPUExecutionProvider"):
        check_session_providers(load_target("cuda"), ["CPUExecutionProvider"])
    check_session_providers(load_target("cuda"), ["CUDAExecutionProvider", "CPUExecutionProvider"])


def test_gpu_targets_preload_the_cuda_libraries_quietly(monkeypatch, capsys):
    # Without torch in the process, onnxruntime-gpu finds pip's CUDA libraries only through preload_dlls.
    import onnxruntime

    calls = []

    def fake_preload():
        calls.append(True)
        print("Failed to load libcudart.so.13")  # what ORT prints on a machine without them

    monkeypatch.setattr(onnxruntime, "preload_dlls", fake_preload, raising=False)
    preload_gpu_libraries(load_target("cpu"))
    assert calls == []
    for name in ("cuda", "tensorrt"):
        preload_gpu_libraries(load_target(name))
    assert len(calls) == 2
    out = capsys.readouterr()
    assert out.out == "" and "libcudart" in out.err  # stdout stays the command's (JSON) output


def test_import_edgecut_does_not_import_torch():
    code = (
        "import sys, edgecut, edgecut.cli, edgecut.runtime, edgecut.targets, edgecut.model.data, edgecut.model.prompt; "
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_every_target_file_ships_in_the_wheel():
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    shipped = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    assert sorted(shipped["share/edgecut/targets"]) == sorted(
        f"targets/{p.name}" for p in (root / "targets").glob("*.toml")
    )


_CPU = 'name="x"\ndescription="d"\nproviders=["CPUExecutionProvider"]\nprecision="fp32"\n'
_CUDA = 'name="x"\ndescription="d"\nproviders=["CUDAExecutionProvider"]\nprecision="fp16"\n'


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (
            _CPU + "[thresholds]\nmin_argmax_agreement = 2.0\n",
            r"'thresholds.min_argmax_agreement' is 2.0; it must be in \[0, 1\]",
        ),
        (_CPU + "[thresholds]\nmin_argmax_agreement = -0.1\n", "thresholds.min_argmax_agreement"),
        (_CPU + "[thresholds]\nparity_atol = 0\n", "'thresholds.parity_atol' is 0; it must be > 0"),
        (_CPU + "[thresholds]\nparity_atol = nan\n", "thresholds.parity_atol"),
        (_CPU + "[int8]\ncalibration_size = 0\n", "'int8.calibration_size' is 0; it must be >= 1"),
        (_CPU + "[int8]\nmax_accuracy_drop = -1\n", "'int8.max_accuracy_drop' is -1"),
        (_CPU + "[fp16]\nmax_accuracy_drop = 101.0\n", "'fp16.max_accuracy_drop' is 101.0"),
        (_CPU + '[int8]\nmode = "dynamic"\n', "depend on the other texts in its batch"),
        (_CPU + '[int8]\ncandidates = ["static", "magic"]\n', "int8.candidates.*unknown: 'magic'"),
        (_CPU + "[int8]\ncandidates = []\n", "int8.candidates"),
        (_CPU + '[fp16]\ncandidates = ["static"]\n', "fp16.candidates"),
        (
            _CUDA + "[provider_options.CUDAExecutionProvider]\ndevice_idd = 0\n",
            r"unknown option 'provider_options.CUDAExecutionProvider.device_idd'.*did you mean 'device_id'",
        ),
        (
            _CPU + "[provider_options.CPUExecutionProvider]\nintra_op_num_threads = 2\n",
            "CPUExecutionProvider.intra_op_num_threads': CPUExecutionProvider takes no options",
        ),
        (
            'name="x"\ndescription="d"\nproviders=["TensorrtExecutionProvider"]\nprecision="fp16"\n'
            "[provider_options.TensorrtExecutionProvider]\ntrt_fp16_enabled = true\n",
            "did you mean 'trt_fp16_enable'",
        ),
    ],
)
def test_schema_rejects_out_of_range_values_and_misspelt_options(body, match, tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(body)
    with pytest.raises(TargetError, match=match) as caught:
        load_target(str(path))
    assert "\n" not in str(caught.value)


def test_schema_accepts_the_edges_of_each_range(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(
        _CUDA + "[thresholds]\nmin_argmax_agreement = 1\nparity_atol = 1e-9\n"
        '[int8]\ncalibration_size = 1\nmax_accuracy_drop = 0\ncandidates = ["int8-embedding"]\n'
        "[fp16]\nmax_accuracy_drop = 100\n[provider_options.CUDAExecutionProvider]\ndevice_id = 0\nuse_tf32 = 0\n"
    )
    target = load_target(str(path))
    assert target.min_argmax_agreement == 1.0 and target.int8.calibration_size == 1
    assert target.int8.max_accuracy_drop == 0 and target.int8.candidates == ("int8-embedding",)
    assert target.fp16.max_accuracy_drop == 100.0


def test_options_ort_did_not_take_are_refused_after_session_creation():
    target = load_target("cuda")  # sets device_id, cudnn_conv_algo_search, enable_skip_layer_norm_strict_mode
    taken = {"device_id": "0", "cudnn_conv_algo_search": "HEURISTIC", "enable_skip_layer_norm_strict_mode": "1"}
    check_reported_provider_options(target, {"CUDAExecutionProvider": taken})
    without = {k: v for k, v in taken.items() if k != "cudnn_conv_algo_search"}
    with pytest.raises(TargetError, match="did not take option 'cudnn_conv_algo_search'"):
        check_reported_provider_options(target, {"CUDAExecutionProvider": without})
