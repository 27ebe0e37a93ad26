"""Bad inputs for the clean side (rows of docs/BAD_INPUTS.md): the runtime API (decode_pcm,
load_artifact, ModelConfig.load) raises one line naming the fix; `python -m orcaport.parity` and
`python -m orcaport.parity.publishing` exit non-zero with one `error:` line and write nothing."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import soundfile as sf

from orcaport.model.artifact import load_artifact
from orcaport.model.audio import AudioDecodeError, decode_pcm
from orcaport.model.waveform import clip_windows
from orcaport.model.config import ConfigError, ModelConfig
from orcaport.model.errors import ExitCode
from orcaport.model.weights import WeightsError
from orcaport.parity.result import Criteria, ParityResult, ToleranceInfo, UnstableSeconds
from tests.conftest import CORPUS, FIXTURE, REFS, ROOT

FAST = "exact_2s0_48k_16.wav"          # one clip: the quickest full replay
SECRET = "hf_NEVERprintME0123456789abcdefghijklmnop"


def _one_line(e: pytest.ExceptionInfo[BaseException]) -> str:
    msg = str(e.value)
    assert msg and "\n" not in msg, msg
    return msg


# ----------------------------------------------------------------------------- audio files
def _wav(path: Path, x: np.ndarray, rate: int = 48000, subtype: str = "PCM_16", **kw: Any) -> Path:
    sf.write(path, x, rate, subtype=subtype, **kw)
    return path


def _patched(path: Path, offset: int, fmt: str, value: int) -> Path:
    data = bytearray(_wav(path, np.zeros(4800, np.int16)).read_bytes())
    struct.pack_into(fmt, data, offset, value)
    path.write_bytes(bytes(data))
    return path


def _float_with(value: float) -> Callable[[Path], Path]:
    def make(p: Path) -> Path:
        x = np.full(4800, 0.1, np.float32)
        x[1234] = value
        return _wav(p, x, subtype="FLOAT")
    return make


TONE = (np.sin(np.arange(48000) / 10) * 0.3).astype(np.float32)
AUDIO: dict[str, tuple[Callable[[Path], Path], str]] = {
    "empty": (lambda p: (p.write_bytes(b""), p)[1], "empty file (0 bytes)"),
    "truncated_header": (lambda p: (p.write_bytes(_wav(p, TONE).read_bytes()[:30]), p)[1],
                         "not decodable audio"),
    "corrupt_bytes": (lambda p: (p.write_bytes(np.random.default_rng(0).bytes(5000)), p)[1],
                      "not decodable audio (Format not recognised.)"),
    "mp3": (lambda p: _wav(p, TONE, subtype="MPEG_LAYER_III", format="MP3"), "MP3 files are not read"),
    "ogg": (lambda p: _wav(p, TONE, subtype="VORBIS", format="OGG"), "OGG files are not read"),
    "u_law": (lambda p: _wav(p, TONE, 8000, "ULAW"), "cannot turn WAV/ULAW audio into PCM"),
    "float64": (lambda p: _wav(p, TONE, subtype="DOUBLE"), "cannot turn WAV/DOUBLE audio into PCM"),
    "nan_sample": (_float_with(float("nan")), "hold NaN, Inf or |x| >= 2^32 float samples (first at frame 1234)"),
    "inf_sample": (_float_with(float("-inf")), "hold NaN, Inf or |x| >= 2^32"),
    "huge_sample": (_float_with(1e10), "hold NaN, Inf or |x| >= 2^32"),
    "zero_channels": (lambda p: _patched(p, 22, "<H", 0), "Channel count is zero"),
    "zero_rate": (lambda p: _patched(p, 24, "<I", 0), "not decodable audio"),
    "rate_500_hz": (lambda p: _wav(p, np.zeros(5000, np.int16), 500), "sample rate 500 Hz is outside 1000..768000"),
    "rate_1_mhz": (lambda p: _wav(p, np.zeros(2_000_000, np.int16), 1_000_000), "sample rate 1000000 Hz"),
    "big_endian_rifx": (lambda p: _wav(p, TONE, endian="BIG"), "big-endian (RIFX)"),
}
FIXES = ("sox", "re-export", "resample")


@pytest.mark.parametrize("case", sorted(AUDIO))
def test_decode_pcm_refuses_bad_audio_in_one_line_naming_the_fix(tmp_path: Path, case: str) -> None:
    make, expect = AUDIO[case]
    path = make(tmp_path / f"{case}.wav")
    with pytest.raises(AudioDecodeError) as e:
        decode_pcm(path)
    msg = _one_line(e)
    assert expect in msg and str(path) in msg and any(f in msg for f in FIXES), msg


def test_decode_pcm_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="No such file"):
        decode_pcm(tmp_path / "nope.wav")


def test_audio_shorter_than_one_window_decodes_but_yields_no_window(tmp_path: Path) -> None:
    header_only = _wav(tmp_path / "h.wav", np.zeros(0, np.int16))
    assert decode_pcm(header_only).frames == 0 and clip_windows(0.0) == []
    short = decode_pcm(_wav(tmp_path / "s.wav", TONE[:95_999]))   # one frame short of 2 s
    assert clip_windows(short.duration_s) == []
    assert clip_windows(decode_pcm(_wav(tmp_path / "t.wav", np.r_[TONE, TONE])).duration_s) == [(0, 2)]


STREAM_PROBE = """
import json, resource, sys
from orcaport.model.detector import open_audio
src = open_audio(sys.argv[1])
print(json.dumps({"streamed": src.pcm is None, "duration_s": src.duration_s,
                  "seconds": [list(s.shape) for s in src.segments(3)],
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))
"""


def test_ten_hour_file_is_streamed_not_loaded_whole(tmp_path: Path) -> None:
    """A sparse 10 h, 48 kHz 16-bit WAV (3.5 GB, no disk used): the detector's reader opens it
    and hands out its first seconds with a few hundred MB of memory, never the whole file."""
    path = tmp_path / "ten_hours.wav"
    frames = 10 * 3600 * 48000
    header = _wav(tmp_path / "h.wav", np.zeros(0, np.int16)).read_bytes()   # 44-byte PCM_16 header
    with open(path, "wb") as f:
        f.write(header[:4] + struct.pack("<I", 36 + 2 * frames) + header[8:40] + struct.pack("<I", 2 * frames))
        f.truncate(44 + 2 * frames)
    out = subprocess.run([sys.executable, "-c", STREAM_PROBE, str(path)], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout)
    assert got["streamed"] and got["duration_s"] == 36000.0 and got["seconds"] == [[48000, 1]] * 3
    assert got["peak_mb"] < 1500, f"{got['peak_mb']} MB: the 3.5 GB file was read whole"
    assert len(clip_windows(got["duration_s"])) == 35999


# ----------------------------------------------------------------------------- config.json
def _config(tmp: Path, edit: Callable[[dict[str, Any]], Any] | None = None, text: str | None = None) -> Path:
    path = tmp / "config.json"
    if text is None:
        data = json.loads((FIXTURE / "config.json").read_text())
        if edit is not None:
            edit(data)
        text = json.dumps(data)
    path.write_text(text)
    return path


CONFIGS: dict[str, tuple[Callable[[dict[str, Any]], Any] | str, str]] = {
    "unknown_field": (lambda d: d.update(colour="blue"), "unknown field(s) colour"),
    "missing_field": (lambda d: d["frontend"].pop("n_mels"), "config.frontend: missing field(s) n_mels"),
    "n_fft_string": (lambda d: d["frontend"].update(n_fft="2560"), "config.frontend.n_fft must be an integer, got '2560'"),
    "n_fft_negative": (lambda d: d["frontend"].update(n_fft=-1), "config.frontend.n_fft must be > 0, got -1"),
    "threshold_nan": (lambda d: d["aggregation"].update(threshold=float("nan")), "threshold must be a finite number"),
    "threshold_range": (lambda d: d["aggregation"].update(threshold=1.5), "threshold must be in [0, 1]"),
    "lin_ftrs_item": (lambda d: d["architecture"]["head"].update(lin_ftrs=[1024, "512", 2]), "lin_ftrs[1] must be an integer"),
    "downmix_string": (lambda d: d["frontend"].update(downmix="yes"), "downmix must be true or false"),
    "classes_empty": (lambda d: d.update(classes=[]), "config.classes must not be empty"),
    "provenance_list": (lambda d: d.update(provenance=[]), "config.provenance must be an object"),
    "schema_version": (lambda d: d.update(schema_version=2), "schema_version 2 is not 1"),
    "body_unsupported": (lambda d: d["architecture"].update(body="xresnet50"), "unsupported body 'xresnet50'"),
    "windowing_zero_hop": (lambda d: d["windowing"].update(hop_seconds=0),
                           "config.windowing.hop_seconds must be > 0, got 0"),
    "not_json": ("{not json", "is not valid JSON"),
    "not_an_object": ("[1, 2]", "must hold a JSON object"),
}


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_config_load_refuses_naming_the_field(tmp_path: Path, case: str) -> None:
    edit, expect = CONFIGS[case]
    path = _config(tmp_path, text=edit) if isinstance(edit, str) else _config(tmp_path, edit)
    with pytest.raises(ConfigError) as e:
        ModelConfig.load(path)
    msg = _one_line(e)
    assert expect in msg and ("make convert" in msg or "fix that field" in msg), msg


def test_missing_config_names_make_convert(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config.json not found; run `make convert`"):
        load_artifact(tmp_path / "no_such_model")


# ----------------------------------------------------------------------------- model.safetensors
def _model(tmp: Path, weights: Callable[[bytes], bytes] = lambda b: b, pin: bool = False,
           config: Callable[[dict[str, Any]], Any] | None = None) -> Path:
    """A fixture copy with the weights edited; `pin` re-pins config.json on the edited bytes."""
    dst = tmp / "model"
    dst.mkdir()
    blob = weights((FIXTURE / "model.safetensors").read_bytes())
    (dst / "model.safetensors").write_bytes(blob)
    cfg = json.loads((FIXTURE / "config.json").read_text())
    if pin:
        cfg["provenance"]["weights_sha256"] = hashlib.sha256(blob).hexdigest()
    if config is not None:
        config(cfg)
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


def _flip(at: int) -> Callable[[bytes], bytes]:
    def edit(b: bytes) -> bytes:
        a = bytearray(b)
        a[at] ^= 0x01
        return bytes(a)
    return edit


ARTIFACTS: dict[str, tuple[dict[str, Any], str]] = {
    "flipped_data_byte": ({"weights": _flip(-100)}, "is not the file config.json was written with"),
    "truncated": ({"weights": lambda b: b[: len(b) // 2]}, "tampered, truncated or swapped"),
    "truncated_but_pinned": ({"weights": lambda b: b[: len(b) // 2], "pin": True}, "is truncated or not a safetensors file"),
    "unpinned": ({"config": lambda c: c["provenance"].pop("weights_sha256")}, "does not pin its weights"),
    "other_conversion": ({"config": lambda c: c["provenance"].update(source_sha256="0" * 64)}, "come from different conversions"),
    "config_for_other_body": ({"config": lambda c: c["architecture"].update(body="resnet34")}, "does not match the network in config.json"),
}


@pytest.mark.parametrize("case", sorted(ARTIFACTS))
def test_load_artifact_refuses_tampered_or_mismatched_weights(tmp_path: Path, case: str) -> None:
    kwargs, expect = ARTIFACTS[case]
    with pytest.raises(WeightsError) as e:
        load_artifact(_model(tmp_path, **kwargs))
    msg = _one_line(e)
    assert expect in msg and "make convert" in msg, msg


# ----------------------------------------------------------------------------- python -m orcaport.parity
def _cli(tmp: Path, module: str, *args: str, **env: str) -> tuple[int, str, str]:
    run = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "60", **env})
    return run.returncode, run.stdout, run.stderr


def _parity(tmp: Path, *args: str, **env: str) -> tuple[int, str, str]:
    """python -m orcaport.parity on the fixture; `args` given later win (argparse: the last one)."""
    return _cli(tmp, "orcaport.parity", "--model", str(FIXTURE), "--references", str(REFS), "--audio", str(CORPUS),
                *args, **env)


def _error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, stderr[-2000:]
    return lines[0]


def _refs(tmp: Path, edit: Callable[[dict[str, Any]], Any]) -> Path:
    dst = tmp / "stages"
    shutil.copytree(REFS, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    edit(manifest)
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


def _corpus(tmp: Path, flip: str) -> Path:
    dst = tmp / "corpus"
    shutil.copytree(CORPUS, dst)
    data = bytearray((dst / flip).read_bytes())
    data[-2] ^= 0x01
    (dst / flip).write_bytes(bytes(data))
    return dst


PARITY: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    "references_missing": (lambda t: ["--references", str(t / "none")], "manifest.json not found"),
    "manifest_schema": (lambda t: ["--references", str(_refs(t, lambda m: m.update(files={})))],
                        "files must be a list of objects (wrong manifest schema)"),
    "manifest_name_escapes": (lambda t: ["--references", str(_refs(t, lambda m: m["files"][0].update(
        name="../../../etc/passwd")))], "'../../../etc/passwd' is not a plain file name"),
    "corpus_tampered": (lambda t: ["--corpus", str(_corpus(t, FAST))], "is not the audio the references were made from"),
    "flagship_tampered_with_only": (lambda t: ["--corpus", str(_corpus(t, "hydrophone_48k_mono16_60s.wav"))],
                                    "hydrophone_48k_mono16_60s.wav is not the audio"),
    "config_bad_type": (lambda t: ["--model", str(_model(t, config=lambda c: c["frontend"].update(n_fft="2560")))],
                        "config.frontend.n_fft must be an integer"),
    "tolerances_malformed": (lambda t: ["--tolerances", str((t / "tol.json", (t / "tol.json").write_text(
        '{"version": 1, "stages": 3}'))[0])], "is not a tolerances file"),
    "reports_is_a_file": (lambda t: ["--reports", str((t / "taken", (t / "taken").write_text("x"))[0])],
                          "cannot write reports"),
}


@pytest.mark.parametrize("case", sorted(PARITY))
def test_parity_cli_refuses_with_its_exit_code_and_writes_nothing(tmp_path: Path, case: str) -> None:
    args, expect = PARITY[case]
    extra = args(tmp_path)
    reports = tmp_path / "reports"
    code, out, err = _parity(tmp_path, "--reports", str(reports), "--only", FAST, *extra)
    line = _error_line(err)
    want = ExitCode.OUTPUT if case == "reports_is_a_file" else ExitCode.BAD_INPUT
    assert code == want and expect in line, (code, line)
    assert not reports.exists()
    if case == "reports_is_a_file":
        assert (tmp_path / "taken").read_text() == "x"


def test_no_secret_from_the_environment_reaches_parity_output(tmp_path: Path) -> None:
    code, out, err = _parity(tmp_path, "--reports", str(tmp_path / "r"), "--only", FAST, HF_TOKEN=SECRET)
    assert code == 0, err[-2000:]
    assert SECRET not in out + err
    assert all(SECRET.encode() not in p.read_bytes() for p in (tmp_path / "r").iterdir())


# ----------------------------------------------------------------------------- publish
def test_publish_refuses_a_report_about_other_weights_without_leaking_the_token(tmp_path: Path) -> None:
    report = tmp_path / "parity.json"
    report.write_text(ParityResult(
        schema_version=1, profile="legacy-exact", weights_sha256="0" * 64, config_sha256="1" * 64,
        references_manifest_sha256="2" * 64, references_weights_sha256="0" * 64, weights_check="verified",
        tolerances=ToleranceInfo(version=2, sha256="3" * 64, regime="cross_machine", safety_factor=4.0,
                                 envelope_sha256="4" * 64),
        files_selected="all", environment={}, criteria=Criteria(regime="cross_machine", same_fingerprint=False,
                                                                why="-", recorded_on="-", replayed_on="-"),
        unstable_seconds=UnstableSeconds(seconds=0, flips=0), passed=True, first_failure=None, files=[],
        summary=[], real_data={}, runtime_files={}).to_json())
    code, out, err = _cli(tmp_path, "orcaport.parity.publishing", "--model", str(FIXTURE), "--report", str(report),
                          "--references", str(REFS), "--repo-id", "org/name", "--dry-run", "--staging",
                          str(tmp_path / "s"), HF_TOKEN=SECRET)
    assert code == ExitCode.REFUSED and "was made for other weights" in _error_line(err) and "it is stale" in err
    assert SECRET not in out + err and not (tmp_path / "s").exists()
    code, _, err = _cli(tmp_path, "orcaport.parity.publishing", "--model", str(FIXTURE), "--report",
                        str(tmp_path / "none.json"), "--references", str(REFS), "--repo-id", "org/name", "--dry-run",
                        HF_TOKEN=SECRET)
    assert code == ExitCode.REFUSED and "does not exist (no parity run on record)" in _error_line(err)
    assert SECRET not in err


def test_publish_refuses_a_repo_id_that_is_not_namespace_name(tmp_path: Path) -> None:
    code, _, err = _cli(tmp_path, "orcaport.parity.publishing", "--model", str(FIXTURE), "--references", str(REFS),
                        "--repo-id", "../etc", "--dry-run")
    assert code == ExitCode.USAGE and "is not NAMESPACE/NAME" in _error_line(err)


def test_staged_file_names_cannot_reach_outside_the_staging_folder(tmp_path: Path) -> None:
    from orcaport.parity.publishing.publish import PublishError, staged_files

    (tmp_path / "SHA256SUMS").write_text(f"{'0' * 64}  config.json\n{'1' * 64}  ../../.cache/huggingface/token\n")
    with pytest.raises(PublishError, match="names '../../.cache/huggingface/token', outside"):
        staged_files(tmp_path)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_staging_swap_killed_midway_is_undone_by_the_next_run(tmp_path: Path) -> None:
    """SIGKILL between moving the old staging aside and renaming the new one in: no staging folder,
    the old one under .repo.old-<pid>-*/previous. The next stage() puts it back first
    (model/fileio.py recover_folder, which every folder swap runs first)."""
    from orcaport.model.fileio import recover_folder

    dead, live = _dead_pid(), os.getpid()
    (tmp_path / f".repo.old-{dead}-x" / "previous").mkdir(parents=True)
    (tmp_path / f".repo.old-{dead}-x" / "previous" / "SHA256SUMS").write_text("old\n")
    (tmp_path / f".repo.tmp-{dead}-y").mkdir()
    (tmp_path / f".repo.tmp-{live}-z").mkdir()   # a staging still being built: left alone
    recover_folder(tmp_path / "repo")
    assert (tmp_path / "repo" / "SHA256SUMS").read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".repo.tmp-{live}-z", "repo"]
