"""Legacy-env glue: run fastai 1.0.61 + fastai_audio 0.1 the way OrcaHello production does.

Only `convert/` imports this, and only inside the legacy env. It does three things production does
and nothing else:
- torchaudio >= 2.9 needs torchcodec for load/save; production monkeypatches both to soundfile
  (`sf.read(dtype='float32')`, `sf.write` with its default PCM_16 subtype -- the 16-bit caches).
- fastai's `load_learner` needs `torch.load(weights_only=False)`, which runs code from the pickle:
  we allow it only for a file whose sha256 was checked first, and only for that one call.
- fastai_audio caches under ~/.fastai/cache whatever the data path: callers isolate HOME.
"""

from __future__ import annotations

import contextlib
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import soundfile as sf
import torch
import torchaudio

from orcaport.model.errors import OrcaportError
from orcaport.model.fileio import sha256_file, write_files_atomically

PKL_SHA256_SUFFIX = ".sha256"


class ConvertError(OrcaportError, RuntimeError):
    """A clear, one-line reason the legacy side refuses to go on."""


def _soundfile_load(filepath: Any, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, int]:
    data, samplerate = sf.read(str(filepath), dtype="float32")
    waveform = torch.from_numpy(data.T if data.ndim > 1 else data.reshape(1, -1))
    return waveform, samplerate


def _soundfile_save(filepath: Any, src: torch.Tensor, sample_rate: int, *args: Any, **kwargs: Any) -> None:
    data = src.numpy().T if src.ndim > 1 else src.numpy().reshape(-1, 1)
    sf.write(str(filepath), data, sample_rate)


def patch_torchaudio_io() -> None:
    """Production's soundfile-backed torchaudio.load/save (see module docstring). Idempotent."""
    torchaudio.load = _soundfile_load
    torchaudio.save = _soundfile_save
    # fastai_audio did `import torchaudio` and calls `torchaudio.load(...)` through the module, so
    # patching the module attribute reaches it; `from torchaudio import load` copies would not.


def expected_sha256(model_pkl: Path, given: str | None) -> str:
    """The hash the pickle must have: given on the command line, else recorded beside it."""
    if given:
        value = given.strip().lower()
    else:
        record = trust_record(model_pkl)
        if not record.exists():
            raise ConvertError(
                f"no expected sha256 for {model_pkl}: pass SHA256=<hex> (make convert) or --sha256, "
                f"or record it in {record.name} after checking the file's origin")
        value = record.read_text().split()[0].strip().lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ConvertError(f"expected sha256 {value!r} is not 64 hex digits")
    return value


def trust_record(model_pkl: Path) -> Path:
    return model_pkl.with_name(model_pkl.name + PKL_SHA256_SUFFIX)


def record_trust(model_pkl: Path, sha256: str) -> Path | None:
    """Remember a hash the user gave (and the file matched) in `<model.pkl>.sha256`, so every later
    target runs without SHA256=: trust is given once. An existing record of the same hash is kept
    as it is (it says when trust was first given). Returns the record, or None when the model's
    folder is not writable (a warning: the conversion itself succeeded)."""
    record = trust_record(model_pkl)
    if record.is_file() and record.read_text().split()[:1] == [sha256]:
        return record
    when = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = (f"{sha256}  {model_pkl.name}\n"
            f"# trusted: given by the user as SHA256= to `make convert` (--sha256) and matched by this "
            f"file on {when}; later targets read this line instead of asking again. Delete it to revoke.\n")
    try:
        write_files_atomically(record.parent, {record.name: text})
    except OSError as e:
        print(f"warning: could not record the trusted sha256 in {record} ({e.strerror or e}); pass "
              "SHA256= to every later target", file=sys.stderr)
        return None
    return record


def load_trusted_learner(model_pkl: str | Path, sha256: str | None = None) -> Any:
    """Verify `model_pkl`'s sha256, then (and only then) unpickle it with fastai's load_learner."""
    model_pkl = Path(model_pkl)
    if not model_pkl.is_file():
        raise ConvertError(f"{model_pkl} not found; pass MODEL=path/to/model.pkl")
    want = expected_sha256(model_pkl, sha256)
    got = sha256_file(model_pkl)
    if got != want:
        raise ConvertError(
            f"refusing to unpickle {model_pkl}: sha256 {got} != expected {want}; unpickling runs "
            "code from the file, so check where it came from and pass its real hash")
    from fastai.basic_train import Learner, load_learner
    from fastai.vision.data import ImageDataBunch
    import audio  # noqa: F401  (the pickle references fastai_audio classes)
    from audio.data import AudioDataBunch

    # fastai_audio 0.1 cannot reload a learner exported with normalization: load_learner calls
    # `data.normalize(...)`, which only ImageDataBunch defines. Borrow it (it is what fastai 1.0.61
    # normalization means) so such learners load, with their stats applied as in training.
    if not hasattr(AudioDataBunch, "normalize"):
        AudioDataBunch.normalize = ImageDataBunch.normalize

    patch_torchaudio_io()
    real_load = torch.load

    def trusted_load(*args: Any, **kwargs: Any) -> Any:
        kwargs["weights_only"] = False
        return real_load(*args, **kwargs)

    torch.load = trusted_load
    try:
        learn = load_learner(str(model_pkl.parent), model_pkl.name)
    except Exception as e:  # noqa: BLE001 - anything fastai raises means "not a learner we can load"
        why = (str(e).splitlines() or [""])[0].split(". ")[0][:160]
        raise ConvertError(f"{model_pkl} is not a fastai 1.0.61 learner export ({type(e).__name__}: "
                           f"{why}); export the learner with fastai 1.0.61 `learn.export()`") from None
    finally:
        torch.load = real_load
    if not isinstance(learn, Learner):
        raise ConvertError(f"{model_pkl} unpickled to {type(learn).__name__}, not a fastai Learner; "
                           "export the learner with fastai 1.0.61 `learn.export()`")
    learn.model.eval()
    return learn


@contextlib.contextmanager
def isolated_home(path: str | Path) -> Iterator[Path]:
    """Point HOME (and so fastai_audio's ~/.fastai/cache) at `path` for the duration."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    old = os.environ.get("HOME")
    os.environ["HOME"] = str(path)
    try:
        yield path
    finally:
        if old is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = old


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def ffmpeg_version() -> str | None:
    """pydub hands every WAV it cannot parse itself (float, u-law, ...) to ffmpeg/ffprobe."""
    import shutil
    import subprocess

    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        return None
    out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split()
    return out[2] if len(out) > 2 else "unknown"


def legacy_versions() -> dict[str, str]:
    """Every legacy package version that can change a number, for provenance and manifests."""
    import importlib.metadata as md
    import platform

    names = ["fastai", "fastai_audio", "torch", "torchaudio", "torchvision", "numpy", "scipy",
             "soundfile", "pydub", "librosa", "pandas"]
    out = {"python": platform.python_version(), "libsndfile": sf.__libsndfile_version__,
           "ffmpeg": ffmpeg_version() or "not installed"}
    for name in names:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out
