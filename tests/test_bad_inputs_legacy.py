"""Bad inputs for the legacy-env commands (`make convert`, `make references`): every one is refused
with one line naming the fix, a non-zero exit, and nothing written (rows of docs/BAD_INPUTS.md).
The cases run in one legacy process (tests/legacy/bad_inputs.py); skipped without the legacy env.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from orcaport.model.errors import ExitCode
from tests.conftest import ROOT, legacy_interpreter, run_legacy

pytestmark = pytest.mark.legacy
INT32_MAX, INT32_MIN = 2**31 - 1, -(2**31)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_legacy(["tests/legacy/bad_inputs.py"], home=tmp_path_factory.mktemp("home"))


def _refused(case: dict[str, Any], *needles: str, code: ExitCode = ExitCode.BAD_INPUT) -> str:
    """Exit `code` (3: an unusable input), exactly one 'error:' line holding every needle, and no
    output folder written."""
    lines = [ln for ln in case["err"].splitlines() if ln.startswith("error:")]
    assert case["rc"] == code and len(lines) == 1, case
    assert all(n in lines[0] for n in needles), (needles, lines[0])
    assert not case["out_files"], f"something was written: {case['out_files']}"
    return lines[0]


CONVERT = {
    "missing_pkl": ("not found; pass MODEL=",),
    "no_expected_sha": ("no expected sha256", "pass SHA256=<hex>"),
    "malformed_sha": ("is not 64 hex digits",),
    "dict_pickle": ("is not a fastai 1.0.61 learner export", "learn.export()"),
    "truncated_pkl": ("is not a fastai 1.0.61 learner export", "learn.export()"),
    "xresnet18_body": ("unsupported learner: model[0][0][0] is Conv2d", "the bodies of fastai's model_meta"),
    "vgg16_no_bn_body": ("unsupported learner: model[0][0][1] is ReLU", "vgg11_bn has BatchNorm2d"),
    "custom_head": ("unsupported learner: model[1][1] is Flatten", "create_head"),
    "out_is_file": ("cannot create output folder", "pass a writable folder"),
}


@pytest.mark.parametrize("case", sorted(CONVERT))
def test_convert_refuses(results: dict[str, Any], case: str) -> None:
    _refused(results["convert"][case], *CONVERT[case],
             code=ExitCode.OUTPUT if case == "out_is_file" else ExitCode.BAD_INPUT)


def test_a_pickle_with_the_wrong_sha256_is_never_opened(results: dict[str, Any]) -> None:
    """The pickle creates a marker file when unpickled: refused on the hash, it must not exist.
    The control (same pickle, its real hash) shows the payload does fire once trusted."""
    wrong = results["convert"]["marker_wrong_sha"]
    _refused(wrong, "refusing to unpickle", "pass its real hash")
    assert wrong["marker"] is False
    assert results["convert"]["marker_right_sha"]["marker"] is True
    _refused(results["convert"]["marker_right_sha"], "not a fastai 1.0.61 learner export")


def test_a_flipped_byte_in_model_pkl_is_refused_and_previous_outputs_kept(results: dict[str, Any]) -> None:
    case = results["convert"]["tampered_pkl"]
    _refused(case, "refusing to unpickle", "!= expected")
    assert case["outputs_untouched"]


def test_a_wrongly_typed_frontend_field_is_named_before_unpickling(results: dict[str, Any]) -> None:
    case = results["convert"]["frontend_bad_type"]
    _refused(case, "fe.json.n_fft must be an integer, got '2560'")
    assert case["marker"] is False   # the (trusted) marker pickle was not even opened


REFERENCES = {
    "weights_tampered": ("model.safetensors is not the file config.json was written with",),
    "config_bad_type": ("config.frontend.n_fft must be an integer",),
    "config_not_from_pkl": ("was not converted from", "re-run `make convert`"),
    "audio_folder_empty": ("holds no audio file", "AUDIO="),
    "audio_missing": ("no_such_folder does not exist", "AUDIO="),
    "over_budget": ("but the budget is 0 MB", "BUDGET_MB="),
    "no_ffmpeg": ("ffmpeg/ffprobe not found", "apt-get install ffmpeg"),
}


@pytest.mark.parametrize("case", sorted(REFERENCES))
def test_references_refuses(results: dict[str, Any], case: str) -> None:
    _refused(results["references"][case], *REFERENCES[case])
    if case == "over_budget":   # refused before any legacy run: the size is known from the headers
        assert results["references"][case]["err"].startswith("error:"), results["references"][case]


def test_legacy_turns_nan_inf_and_huge_floats_into_position_dependent_clicks(results: dict[str, Any]) -> None:
    """The divergence docs/BAD_INPUTS.md documents. ffmpeg makes NaN/+inf INT32_MAX and -inf
    INT32_MIN inside its SIMD blocks, and a 1e10 sample INT32_MIN in a 9-sample file (the scalar
    tail) but INT32_MAX in a 64-sample one: no runtime can replay that, so decode_pcm refuses."""
    audio = results["legacy_audio"]
    assert audio["nan_inf_samples"] == [INT32_MAX, INT32_MAX, INT32_MIN]
    assert audio["finite_sample"] == 2**29                       # 0.25 * 2^31: the path is ffmpeg's
    assert audio["huge_first_sample_by_file_length"] == {"9": INT32_MIN, "64": INT32_MAX}


def test_floats_beyond_full_scale_decode_exactly_as_ffmpeg(results: dict[str, Any]) -> None:
    audio = results["legacy_audio"]
    assert audio["big_floats_clean"] == audio["big_floats_legacy"]
    assert audio["big_floats_legacy"][:6] == [INT32_MAX, INT32_MIN] * 3


def test_legacy_accepts_a_500_hz_file_the_runtime_refuses(results: dict[str, Any]) -> None:
    assert (results["legacy_audio"]["rate_500_frame_rate"], results["legacy_audio"]["rate_500_ms"]) == (500, 10000)


def test_cli_exit_status_is_non_zero_through_python_m(tmp_path: Path) -> None:
    """The in-process cases above return main()'s status; this one goes through the real CLI."""
    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(b"not even a pickle")
    run = subprocess.run([legacy_interpreter(), "-m", "convert.cli", "--model", str(pkl), "--out",
                          str(tmp_path / "out"), "--sha256", "0" * 64], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == ExitCode.BAD_INPUT and run.stderr.startswith("error: refusing to unpickle"), run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
