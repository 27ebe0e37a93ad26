"""The detector people run: audio file -> per-second confidences + a global call/no-call decision.

Same composition as parity's chained replay (`parity/replay.py`): decode -> 2 s clips every 1 s ->
load/downmix/16-bit cache -> resample_poly + cache -> mel -> dB -> pad -> normalize -> network ->
softmax -> rolling aggregation. Fast without leaving parity's bar in `legacy-exact`:
- the frontend is legacy's bit for bit; each second is decoded, loaded, downmixed and round-tripped
  ONCE and shared by the two clips overlapping it (per-sample steps: tested bit-exact). resample_poly
  is not shared: a 2 s clip's first/last ~10 output samples differ from a longer signal's (edges);
- files above STREAM_BYTES are streamed second by second and freed heap pages are handed back, so
  memory does not grow with length;
- the network (model/onednn.py) runs in fp32 with BN folded, each conv (+ReLU, +residual) one
  oneDNN primitive, and the clips' shared 0 dB padding computed once (probabilities within 1e-5 of
  legacy, decisions identical: tests/test_detector.py), in small batches, `workers` threads each
  running whole batches single-threaded: no OpenMP barrier per layer, so a shared machine's load
  does not stall every layer.
`fast` changes only the network's arithmetic, chosen once from the hardware (model/arithmetic.py):
bf16 (oneDNN) on a CPU with AVX512-BF16/AMX, fp16 autocast on CUDA, else fp32 -- `legacy-exact`'s
engine, because emulated bf16 is slower than fp32. `self.arithmetic` says what was chosen and why.
int8 (`arithmetic="int8"`, never chosen by itself) runs model/quantized.py's int8 body + fp32 head,
rebuilt from the calibration stored in the model folder (model/calibration.py, `orcaport calibrate`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from orcaport.model.aggregate import aggregate
from orcaport.model.arithmetic import Arithmetic, choose, strict_fp32_cuda
from orcaport.model.artifact import CONFIG_FILE, WEIGHTS_FILE, Artifact, load_artifact
from orcaport.model.clips import ClipWaveforms
from orcaport.model.cpus import available_cpus
from orcaport.model.detection import Detection
from orcaport.model.onednn import OneDnnNet
from orcaport.model.source import STREAM_BYTES, AudioSource, DetectorError, open_audio, release_free_memory
from orcaport.model.pipeline import (FRONTEND_STEPS, Frontend, check_windowed, mel_step, normalize, probabilities,
                                     run_steps, windows_of)
from orcaport.model.spectrogram import input_width

PROFILES = ("legacy-exact", "fast")
# windowed: OrcaHello's FastAIModel.predict (clips, per-hop rows, a global decision);
# predict: fastai_audio's own predict (one prediction per file or per item, model/predict.py)
MODES = ("windowed", "predict")
DEVICES = ("cpu", "cuda")
ENGINES = ("onednn", "channels_last", "nchw")
# Clips per network call. Small CPU batches keep a ResNet50's activations in cache: batch 4 ran
# 1.2-1.5x faster per clip than 16 here (fp32 and bf16); a GPU wants big ones.
DEFAULT_BATCH = {"cpu": 4, "cuda": 64}
MAX_WORKERS = 4                 # more concurrent batches only add activation memory
TRIM_EVERY = 64                 # batches between malloc_trim calls (each takes < 20 ms)
ProgressFn = Callable[[int, int], None]   # (clips done, clips total)


@contextlib.contextmanager
def _intra_op_threads(n: int) -> Iterator[None]:
    """Set torch's intra-op threads for the duration (workers created inside inherit it)."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


class Detector:
    """A loaded model folder, ready to run on files. Thread-compatible, not thread-safe:
    `detect` sets torch's intra-op thread count while it runs and restores it after.

    engine: "onednn" (CPU default: BN folded, oneDNN layouts, padding reuse unless
    `reuse_padding=False`), "channels_last" / "nchw" (the plain OrcaNet module, as parity runs it;
    the fast profile then uses torch.autocast).
    """

    def __init__(self, artifact: Artifact, profile: str = "legacy-exact", device: str = "cpu",
                 batch_size: int | None = None, workers: int | None = None, engine: str | None = None,
                 stream_bytes: int = STREAM_BYTES, reuse_padding: bool = True,
                 arithmetic: str | None = None, cpu_flags: frozenset[str] | None = None,
                 mode: str = "windowed") -> None:
        engine = engine or ("onednn" if device == "cpu" and torch.backends.mkldnn.is_available()
                            else "channels_last")
        for what, value, allowed in (("profile", profile, PROFILES), ("device", device, DEVICES),
                                     ("engine", engine, ENGINES), ("mode", mode, MODES)):
            if value not in allowed:
                raise DetectorError(f"unknown {what} {value!r}; use one of: {', '.join(allowed)}")
        if device == "cuda" and not torch.cuda.is_available():
            raise DetectorError("device 'cuda' requested but torch sees no CUDA GPU; use --device cpu")
        if engine == "onednn" and (device != "cpu" or not torch.backends.mkldnn.is_available()):
            raise DetectorError("engine 'onednn' needs the CPU and a torch built with oneDNN")
        batch_size = batch_size or DEFAULT_BATCH[device]
        if batch_size < 1:
            raise DetectorError(f"batch size must be >= 1, got {batch_size}")
        cfg = artifact.config
        if cfg.aggregation.smoothing != "rolling2":
            raise DetectorError(f"aggregation.smoothing={cfg.aggregation.smoothing!r} is not "
                                "implemented (only 'rolling2'); re-run `make convert`")
        self.mode = mode
        if not cfg.frontend.use_spectro:
            raise DetectorError(
                "frontend.use_spectro=False hands the raw waveform (B, C, N) to the network, but its "
                f"body ({cfg.architecture.body}) is a 2-D CNN: legacy's learn.predict fails the same way "
                "('expected 4D input (got 3D input)'); a waveform learner needs a custom 1-D model, "
                "which `make convert` refuses as a custom body")
        self._fe = check_windowed(Frontend.of(cfg)) if mode == "windowed" else Frontend.of(cfg)
        self.frontend = self._fe.cfg
        self.windowing = cfg.windowing
        self.clips = ClipWaveforms(self._fe, cfg.windowing)
        self.artifact, self.profile, self.device, self.engine = artifact, profile, device, engine
        self.batch_size, self.stream_bytes, self.positive_index = batch_size, stream_bytes, cfg.positive_index
        cpus = available_cpus()        # affinity capped by a cgroup quota (a 1-CPU pod sees all cores)
        self.workers = workers or min(cpus, MAX_WORKERS)
        self.intra_threads = max(1, cpus // self.workers)
        # Chosen once, here: `arithmetic` forces it, `cpu_flags` stands in for /proc/cpuinfo (tests).
        self.arithmetic: Arithmetic = choose(profile, device, arithmetic, cpu_flags)
        self.dtype = self.arithmetic.dtype
        # This torch's oneDNN may lack bf16 kernels altogether (not a speed question): autocast then.
        bf16_kernels = torch.ops.mkldnn._is_mkldnn_bf16_supported()
        if engine == "onednn" and self.dtype == torch.bfloat16 and not bf16_kernels:
            engine = self.engine = "channels_last"
        self.reuse_padding = reuse_padding and mode == "windowed"    # whole files: no common padding
        self.memory_format = torch.contiguous_format if engine == "nchw" else torch.channels_last
        self.calibration: Any = None
        if self.arithmetic.name == "int8":     # the stored calibration's quantized body (model/quantized.py)
            self.network, engine = self._int8_network(), "quantized"
            self.engine, self.memory_format = engine, torch.contiguous_format
        elif engine == "onednn":
            self.network: nn.Module | None = self._onednn_network()
            if self.network is None:
                engine = self.engine = "channels_last"
        if engine not in ("onednn", "quantized"):
            self.network = artifact.network.to(device=device, memory_format=self.memory_format).eval()

    def _onednn_network(self) -> nn.Module | None:
        """The fused oneDNN network, checked once against the plain module on a random input;
        None (-> plain module) if this torch lacks the entry points or disagrees (fp32 only)."""
        fe, net = self.frontend, self.artifact.network.eval()
        width = input_width(fe, fe.resample_to) if fe.resample_to and fe.use_spectro else None
        if width is None:       # the input's width follows each file's rate: no fixed plan to build
            return None
        height = fe.n_mfcc if fe.mfcc else fe.n_mels
        example = torch.randn(2, net.config.in_channels, height, width, generator=torch.Generator().manual_seed(0))
        pad_input, content = self._padding(width) if self.reuse_padding else (None, None)
        try:
            fused = OneDnnNet(net, self.dtype, example, pad_input, content)
            if pad_input is not None:           # the check below then covers the reuse path too
                example[..., content:] = pad_input[..., content:]
            with torch.inference_mode():
                want, got = net(example), fused(example)
        except (AttributeError, RuntimeError, TypeError):
            return None
        if self.dtype == torch.float32 and not torch.allclose(got, want, rtol=1e-4, atol=1e-4):
            return None
        return fused

    def _int8_network(self) -> nn.Module:
        """int8 body + fp32 head rebuilt from the model folder's calibration (no audio is run);
        the arithmetic's reason then says what it was calibrated on."""
        from orcaport.model.calibration import int8_network

        quantized, self.calibration = int8_network(self.artifact)
        self.arithmetic = dataclasses.replace(self.arithmetic, reason=f"{self.calibration.describe()}; "
                                              f"{self.arithmetic.reason}")
        return quantized

    def _padding(self, width: int) -> tuple[torch.Tensor | None, int | None]:
        """(1, C, n_mels, width) network input of a clip that is all padding, and the columns a
        clip's frames fill: from there on every clip's input is that padding (padding reuse in
        model/onednn.py). (None, None) when the frontend does not pad that way (only OrcaHello's
        chain does: with any other option a clip's width may vary or its padding differ)."""
        fe = self.frontend
        classic = self._fe.chain == tuple(name for name, _ in FRONTEND_STEPS)
        if not (classic and fe.resample_to and fe.duration and fe.pad_mode.lower() == "zeros-after"):
            return None, None
        seconds = self.windowing.clip_seconds
        frames = mel_step(np.zeros((1, seconds * fe.resample_to), np.float32), self._fe, 0).shape[-1]
        if frames > input_width(fe, fe.resample_to):    # cropped, not padded
            return None, None
        shape = (1, self.artifact.config.architecture.in_channels, fe.n_mels, width)
        return normalize(torch.zeros(shape), self._fe.normalization), frames

    @classmethod
    def from_folder(cls, path: str | Path, profile: str = "legacy-exact", device: str = "cpu",
                    batch_size: int | None = None, workers: int | None = None, engine: str | None = None,
                    stream_bytes: int = STREAM_BYTES, reuse_padding: bool = True,
                    arithmetic: str | None = None, cpu_flags: frozenset[str] | None = None,
                    mode: str = "windowed") -> "Detector":
        """Load `path`/model.safetensors + config.json (verified as one conversion)."""
        path = Path(path)
        if not path.is_dir():
            raise DetectorError(f"model folder {path} not found; pass --model DIR holding "
                                f"{WEIGHTS_FILE} + {CONFIG_FILE} (made by `make convert`)")
        return cls(load_artifact(path), profile, device, batch_size, workers, engine, stream_bytes,
                   reuse_padding, arithmetic, cpu_flags, mode)

    @classmethod
    def from_pretrained(cls, source: str | Path, revision: str | None = None,
                        cache_dir: str | Path | None = None, weights_sha256: str | None = None,
                        local_files_only: bool = False, **kwargs: Any) -> "Detector":
        """A model folder or Hub repo id ("org/name", through huggingface_hub's cache; HF_HUB_OFFLINE=1
        serves it offline), weights verified before use (model/hub.py); then as `from_folder`.
        Only data is downloaded: the code that runs it is this installed package."""
        from orcaport.model.hub import resolve_pretrained

        folder = resolve_pretrained(source, revision, cache_dir, weights_sha256, local_files_only)
        return cls.from_folder(folder, **kwargs)

    @property
    def precision(self) -> str:
        """e.g. "fp32", "bfloat16 (onednn)", "float16 autocast"."""
        if self.engine == "quantized":
            return "int8 body, fp32 head"
        kind = "(onednn)" if self.engine == "onednn" else "autocast"
        return "fp32" if self.dtype == torch.float32 else f"{str(self.dtype)[6:]} {kind}"

    # -- frontend ----------------------------------------------------------------------------------
    def clip_waveform(self, clip: np.ndarray, src: AudioSource) -> np.ndarray:
        """The per-clip waveform steps after the shared prefix (model/clips.py).
        -> (C, N') float32 at the spectrogram's rate"""
        return self.clips.clip_waveform(clip, src)

    def spectrogram_inputs(self, waves: torch.Tensor, rate: int) -> torch.Tensor:
        """The spectrogram steps (mel, db, input) of a batch, on the batch's device.
        (B, C, N) float32 -> (B, C, n_mels, width) float32; `rate`: the file's sample rate.

        On the CPU each clip runs alone: that is how legacy computes it, so the GEMM and FFT see
        the same shapes (the bits are legacy's). A GPU runs the batch at once (fp32, TF32 off):
        cuFFT/cuBLAS round differently, well inside the envelope (bench/cuda.json)."""
        if waves.device.type == "cpu" and len(waves) > 1:
            return torch.cat([self.spectrogram_inputs(w[None], rate) for w in waves])
        return run_steps(waves, self._fe, rate, self._fe.spectral_steps[0], "input")["input"]

    def clip_inputs(self, src: AudioSource, first: int = 0, count: int | None = None) -> Iterator[np.ndarray]:
        """Clips first..first+count-1 (default: all) as their shared prefix (before
        `clip_waveform`): each second is prepared once and shared by the two clips overlapping it."""
        return self.clips.clip_inputs(src, first, count)

    # -- network -----------------------------------------------------------------------------------
    def run_network(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized inputs (B, C, n_mels, width) -> (B,) float32 P(positive), on the CPU."""
        return self.network_probabilities(x)[:, self.positive_index]

    def network_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized inputs (B, C, H, W) -> (B, classes) float32 softmax, on the CPU."""
        autocast = self.engine != "onednn" and self.dtype != torch.float32
        with torch.inference_mode(), torch.autocast(self.device, dtype=self.dtype, enabled=autocast):
            if self.engine != "onednn":
                x = x.to(self.device, non_blocking=True)
                if x.dim() == 4:
                    x = x.contiguous(memory_format=self.memory_format)
            logits = self.network(x).float()
        return probabilities(logits).cpu()

    @contextlib.contextmanager
    def network_context(self) -> Iterator[None]:
        """Around a run: torch's intra-op threads, and for fp32 on CUDA TF32 off (fp32 means
        fp32; a global torch setting, so set once around the run, not toggled per batch)."""
        exact_cuda = self.device == "cuda" and self.dtype == torch.float32
        with strict_fp32_cuda() if exact_cuda else contextlib.nullcontext(), _intra_op_threads(self.intra_threads):
            yield

    def batch_inputs(self, clips: list[np.ndarray], src: AudioSource) -> torch.Tensor:
        """Frontend of one batch. -> (B, C, n_mels, width) float32, normalized."""
        waves = [self.clip_waveform(c, src) for c in clips]
        if len({w.shape for w in waves}) > 1:       # remove_silence trims clips to different lengths
            return torch.cat([self.spectrogram_inputs(torch.from_numpy(w)[None], src.sample_rate) for w in waves])
        return self.spectrogram_inputs(torch.from_numpy(np.stack(waves)), src.sample_rate)

    def clip_probabilities(self, path: str | Path, progress: ProgressFn | None = None
                           ) -> tuple[np.ndarray, AudioSource]:
        """P(positive) of every 2 s clip of `path`, in start-time order. -> ((clips,) float32, source)"""
        src = open_audio(path, self.stream_bytes)
        n_clips = len(windows_of(src.duration_s, src.path, self.windowing))
        out: list[torch.Tensor] = []
        pending: deque[Future] = deque()

        done = [0]

        def collect() -> None:
            out.append(pending.popleft().result())
            done[0] += len(out[-1])
            if len(out) % TRIM_EVERY == 0:
                release_free_memory()
            if progress is not None:
                progress(done[0], n_clips)

        sizes = self.batch_sizes(n_clips)
        with self.network_context(), ThreadPoolExecutor(self.workers) as pool:
            batch: list[np.ndarray] = []
            for clip in self.clip_inputs(src):
                batch.append(clip)
                if len(batch) == sizes[len(out) + len(pending)]:
                    pending.append(pool.submit(lambda b: self.run_network(self.batch_inputs(b, src)), batch))
                    batch = []
                    while len(pending) > self.workers:   # bounded memory: a few batches in flight
                        collect()
            while pending:
                collect()
        return torch.cat(out).numpy(), src

    def batch_sizes(self, n_clips: int) -> list[int]:
        """How a file's clips are cut into network calls, the same in every way of running it (one
        file, the many-file feeder, Ray), so each call sees the same clips and returns the same
        bits: as many batches as a multiple of `workers`, sizes within 1 of each other (no worker
        idles through a lone last batch)."""
        n_batches = -(-n_clips // self.batch_size)
        n_batches = min(n_clips, -(-n_batches // self.workers) * self.workers)
        return [n_clips // n_batches + (i < n_clips % n_batches) for i in range(n_batches)]

    def waveform_probabilities(self, waves: np.ndarray, rate: int) -> np.ndarray:
        """P(positive) of a whole file's clips from their waveforms (model/clips.py), batched as
        `clip_probabilities` batches them. (clips, C, N') float32 -> (clips,) float32"""
        x = torch.from_numpy(np.ascontiguousarray(waves))
        bounds = np.cumsum([0] + self.batch_sizes(len(x)))
        with self.network_context(), ThreadPoolExecutor(self.workers) as pool:
            parts = pool.map(lambda ab: self.run_network(self.spectrogram_inputs(x[ab[0]:ab[1]], rate)),
                             zip(bounds[:-1], bounds[1:]))
            return torch.cat(list(parts)).numpy()

    def predict(self, path: str | Path, offsets: list[dict[str, int]] | None = None) -> list[Any]:
        """fastai_audio's own predict on one file (mode="predict"): one ItemPrediction per item
        (label, index, probabilities), model/predict.py."""
        from orcaport.model.predict import predict_file

        if self.mode != "predict":
            raise DetectorError("Detector.predict needs mode='predict' (fastai_audio's per-file/per-item "
                                "predict); this one runs windowed detection (detect)")
        return predict_file(self, path, offsets)

    def detect(self, path: str | Path, threshold: float | None = None, min_positive: int | None = None,
               progress: ProgressFn | None = None) -> Detection:
        """Run the detector on one audio file (legacy's FastAIModel.predict, same fields). A WAV is
        read directly; anything else (FLAC, MP3, AAC, .ts, ...) first goes through production's
        ffmpeg-to-WAV conversion (model/transcode.py), so it is decoded as production decodes it."""
        from orcaport.model.transcode import needs_ffmpeg, production_wav

        if needs_ffmpeg(Path(path)):
            with production_wav(Path(path)) as wav:
                d = self.detect(wav, threshold, min_positive, progress)
            return dataclasses.replace(d, wav_filename=Path(path).name)
        probs, src = self.clip_probabilities(path, progress)
        return self.detection(probs, src, threshold, min_positive)

    def detection(self, probs: np.ndarray, src: AudioSource, threshold: float | None = None,
                  min_positive: int | None = None) -> Detection:
        """A file's Detection from its clips' (clips,) float32 P(positive): the aggregate stage."""
        agg_cfg = self.artifact.config.aggregation
        threshold = agg_cfg.threshold if threshold is None else float(threshold)
        min_positive = agg_cfg.min_positive if min_positive is None else int(min_positive)
        # legacy widens each float32 softmax to float64 before pandas sees it
        agg = aggregate(probs.astype(np.float64), threshold, min_positive)
        hop = self.windowing.hop_seconds
        return Detection(src.path.name, self.profile, int(probs.size), src.duration_s, probs,
                         agg.start_time_s * hop, agg.confidence, agg.local_prediction, agg.global_prediction,
                         agg.global_confidence, threshold, min_positive, src.sample_rate, float(hop))
