"""A whole file as fastai_audio's predict path reads it: `torchaudio.load`, which upstream OrcaHello
(and this project's legacy env) points at soundfile: `sf.read(path, dtype="float32")`, channels
first. No pydub: `AudioList.from_folder` opens the files themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from orcaport.model.errors import InputError


def read_file(path: str | Path) -> tuple[np.ndarray, int]:
    """-> ((C, N) float32, rate): soundfile's (N, C) array transposed (a view, as legacy's load
    returns it) or (1, N) for mono."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such audio file; check the path")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise InputError(f"{path}: soundfile cannot read it ({str(e).strip() or type(e).__name__}); "
                         "convert it to WAV or FLAC") from None
    if data.shape[0] == 0:
        raise InputError(f"{path}: no samples (fastai_audio filters out empty files); give it audio")
    return (data.reshape(1, -1) if data.shape[1] == 1 else data.T), int(rate)
