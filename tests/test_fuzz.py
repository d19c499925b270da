"""Fuzzing of the model-file path: every file either passes the checks or is refused with
ModelLoadError, and the engine, given the files that pass, never brings the process down.

CI runs a bounded number of examples; set SDCPP_FUZZ_EXAMPLES for a longer run.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sdcpp
from sdcpp.files import check_model_file

from .models_legacy import write_torch_legacy

EXAMPLES = int(os.environ.get("SDCPP_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

pytestmark = pytest.mark.slow

DTYPES = ["F16", "F32", "BF16", "I64", "F64", "U8", "Q4", "", "F8_E4M3"]


def _valid_safetensors() -> bytes:
    header = {
        "a.weight": {"dtype": "F16", "shape": [2, 3], "data_offsets": [0, 12]},
        "b.bias": {"dtype": "F32", "shape": [3], "data_offsets": [12, 24]},
    }
    blob = json.dumps(header).encode()
    return struct.pack("<Q", len(blob)) + blob + bytes(range(24))


tensor_entry = st.fixed_dictionaries(
    {
        "dtype": st.sampled_from(DTYPES),
        "shape": st.lists(st.integers(-2, 2**40), max_size=5) | st.just("x"),
        "data_offsets": st.lists(st.integers(-8, 2**33), min_size=0, max_size=3),
    }
)
header_json = st.dictionaries(st.text(min_size=1, max_size=40), tensor_entry, max_size=6).map(
    lambda d: json.dumps(d).encode()
)


def _mutated(valid: bytes) -> st.SearchStrategy[bytes]:
    """`valid` with up to 8 bytes overwritten somewhere."""
    return st.tuples(st.integers(0, len(valid) - 1), st.binary(min_size=1, max_size=8)).map(
        lambda m: valid[: m[0]] + m[1] + valid[m[0] + len(m[1]) :]
    )


def _truncated(valid: bytes) -> st.SearchStrategy[bytes]:
    return st.integers(0, len(valid)).map(lambda n: valid[:n])


mutated_bytes = _mutated(_valid_safetensors())
truncated = _truncated(_valid_safetensors())


@st.composite
def safetensors_files(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["header", "mutated", "truncated", "length"]))
    if kind == "mutated":
        return draw(mutated_bytes)
    if kind == "truncated":
        return draw(truncated)
    body = draw(header_json)
    length = len(body) if kind == "header" else draw(st.integers(0, 2**64 - 1))
    return struct.pack("<Q", length) + body + draw(st.binary(max_size=64))


@st.composite
def gguf_files(draw: st.DrawFn) -> bytes:
    version = draw(st.sampled_from([2, 3]) | st.integers(0, 2**32 - 1))
    n_tensors = draw(st.integers(0, 2**64 - 1) | st.integers(0, 4))
    n_kv = draw(st.integers(0, 2**64 - 1) | st.integers(0, 4))
    return b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv) + draw(st.binary(max_size=256))


def _check_and_keep(data: bytes, folder: Path, passed: list[Path]) -> None:
    path = folder / f"case{len(list(folder.iterdir()))}.bin"
    path.write_bytes(data)
    try:
        check_model_file(path, "model")
    except sdcpp.ModelLoadError:
        return
    passed.append(path)


def _engine_survives(paths: list[Path]) -> None:
    """Loads every file in one child interpreter; a crash there fails the test, not the session."""
    script = textwrap.dedent(
        """
        import sys, sdcpp
        refused = 0
        for p in sys.argv[1:]:
            try:
                sdcpp.Generator(p, device="cpu").close()
            except sdcpp.ModelLoadError:
                refused += 1
        print("engine refused", refused, "of", len(sys.argv) - 1, "files that passed the checks")
        """
    )
    out = subprocess.run([sys.executable, "-c", script, *map(str, paths)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"loading one of {len(paths)} files crashed or raised: {out.stderr[-2000:]}"
    print(out.stdout.strip())


def _passing_files(strategy: st.SearchStrategy[bytes], folder: Path) -> list[Path]:
    passed: list[Path] = []

    @FUZZ
    @given(strategy)
    def run(data: bytes) -> None:
        _check_and_keep(data, folder, passed)

    run()
    return passed


def test_fuzzed_safetensors_are_refused_or_harmless(tmp_path_factory) -> None:
    passed = _passing_files(safetensors_files(), tmp_path_factory.mktemp("fuzz-st"))
    assert passed, "mutations of the tensor data pass the checks and reach the engine"
    _engine_survives(passed)


def test_fuzzed_gguf_headers_are_refused_or_harmless(tmp_path_factory) -> None:
    passed = _passing_files(gguf_files(), tmp_path_factory.mktemp("fuzz-gguf"))
    assert passed, "some GGUF headers of a supported version pass the shallow check"
    _engine_survives(passed)


def test_fuzzed_legacy_checkpoints_are_refused_or_harmless(tmp_path_factory) -> None:
    folder = tmp_path_factory.mktemp("fuzz-ckpt")
    valid = write_torch_legacy(folder / "valid.ckpt", {
        "a.weight": np.arange(6, dtype=np.float16).reshape(2, 3), "b.bias": np.ones(3, np.float32),
    }).read_bytes()
    passed = _passing_files(_mutated(valid) | _truncated(valid), tmp_path_factory.mktemp("fuzz-ckpt-cases"))
    assert passed, "mutations of the storage data pass the checks and reach the engine"
    _engine_survives(passed)
