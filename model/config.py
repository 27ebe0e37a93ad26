"""`config.json`: everything the fastai-free runtime needs besides the weights.

The pickle does not carry the frontend config (`learn.export()` drops the training `AudioConfig`),
so the converter writes the one it was given, and the runtime trusts only this file.
Unknown or missing fields are errors: a silently defaulted field is a silently changed detection.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from orcaport.model.errors import OrcaportError

CONFIG_SCHEMA_VERSION = 1
# Production's windows (OrcaHello's FastAIModel.predict): 2 s clips starting every second, the
# defaults. config.json may ask for other whole-second clips and hops (WindowingConfig).
CLIP_SECONDS = 2
HOP_SECONDS = 1
# Every body fastai 1.0.61's `model_meta` lists (fastai/vision/learner.py), as torchvision names them.
SUPPORTED_BODIES = (
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "densenet121", "densenet161", "densenet169", "densenet201",
    "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
    "squeezenet1_0", "squeezenet1_1", "alexnet", "mobilenet_v2",
)


class ConfigError(OrcaportError, ValueError):
    """config.json is malformed, incomplete or asks for something unsupported."""


@dataclass(frozen=True)
class FrontendConfig:
    """fastai_audio 0.1 `AudioConfig` + `SpectrogramConfig`, field names kept verbatim.

    Defaults are OrcaHello production's (fastai_inference.py, as ../shared/LEGACY.md records it),
    not fastai_audio's own defaults.
    """

    # AudioConfig
    duration: int | None = 4000          # ms; spectrogram padded/cropped to this width
    resample_to: int | None = 20000      # Hz
    downmix: bool = True
    # Pads after, with 0.0 dB (loud, not silence), as upstream's references were made. NB: OrcaHello's
    # fastai_inference.py leaves fastai_audio's default "zeros" (a random front offset), which the
    # runtime replaces by the middle of its range (model/frontend/offsets.py); see README "What the
    # legacy pipeline really does".
    pad_mode: str = "zeros-after"
    standardize: bool = False
    mfcc: bool = False
    delta: bool = False
    max_to_pad: float | None = None
    segment_size: int | None = None
    remove_silence: str | None = None
    silence_threshold: float = 20       # dB below the loudest frame (fastai_audio's default)
    silence_padding: float = 200        # ms kept around sound, also the split's hop
    use_spectro: bool = True
    # SpectrogramConfig
    f_min: float = 0.0
    f_max: float | None = 10000.0       # None: half the filterbank rate (torchaudio's default)
    hop_length: int | None = 256        # None: win_length // 2 (only without a duration)
    n_fft: int = 2560
    n_mels: int = 256
    pad: int = 0
    to_db_scale: bool = True
    top_db: float | None = 100
    win_length: int | None = None
    n_mfcc: int = 20
    # Implied by fastai_audio rather than configured: it builds torchaudio's MelSpectrogram without
    # `sample_rate`, so the filterbank assumes 16 kHz whatever the audio rate. Recorded, not guessed.
    filterbank_sample_rate: int = 16000
    # The downmix/resample caches go through torchaudio.save -> soundfile's default WAV subtype.
    cache_subtype: str = "PCM_16"


@dataclass(frozen=True)
class HeadConfig:
    """fastai `create_head`, as introspected from the learner (never assumed)."""

    concat_pool: bool = True
    lin_ftrs: tuple[int, ...] = (1024, 512, 2)   # in_features of each Linear, then num_classes
    dropout: tuple[float, ...] = (0.25, 0.5)     # inference no-op, kept for provenance
    relu: tuple[bool, ...] = (True, False)       # ReLU after each Linear
    bn_final: bool = False


@dataclass(frozen=True)
class ArchitectureConfig:
    body: str = "resnet18"
    in_channels: int = 1
    head: HeadConfig = field(default_factory=HeadConfig)


@dataclass(frozen=True)
class NormalizationConfig:
    """fastai `DataBunch.normalize` stats, applied per channel to the network input."""

    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class WindowingConfig:
    """Windowed detection's clips: [s, s + clip_seconds) for s = 0, hop, 2 hop, ... while
    s + clip_seconds <= floor(duration). Production's 2 s / 1 s give its range(floor(d) - 1)
    windows. Whole seconds: the detector decodes and shares each second once."""

    clip_seconds: int = CLIP_SECONDS
    hop_seconds: int = HOP_SECONDS


@dataclass(frozen=True)
class AggregationConfig:
    threshold: float = 0.5        # local prediction: confidence > threshold
    min_positive: int = 3         # global prediction: count(local) >= min_positive
    smoothing: str = "rolling2"   # pandas rolling(2).mean(), first row raw, last raw row appended


@dataclass(frozen=True)
class ModelConfig:
    architecture: ArchitectureConfig
    classes: tuple[str, ...]
    positive_index: int
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    windowing: WindowingConfig = field(default_factory=WindowingConfig)
    aggregation: AggregationConfig = field(default_factory=AggregationConfig)
    normalization: NormalizationConfig | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    schema_version: int = CONFIG_SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.schema_version != CONFIG_SCHEMA_VERSION:
            raise ConfigError(
                f"schema_version {self.schema_version} is not {CONFIG_SCHEMA_VERSION}; "
                "re-run `make convert` with this version of the toolkit")
        if self.architecture.body not in SUPPORTED_BODIES:
            raise ConfigError(f"unsupported body {self.architecture.body!r}; supported: "
                              f"{', '.join(SUPPORTED_BODIES)} (`make convert` writes only those)")
        if self.architecture.head.lin_ftrs[-1] != len(self.classes):
            raise ConfigError(f"head has {self.architecture.head.lin_ftrs[-1]} outputs but "
                              f"{len(self.classes)} classes are named")
        if not 0 <= self.positive_index < len(self.classes):
            raise ConfigError(f"positive_index {self.positive_index} is outside the "
                              f"{len(self.classes)} classes")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for (section, name), default in LATE_FIELDS.items():   # see LATE_FIELDS
            if data[section][name] == default:
                del data[section][name]
        return data

    def to_json(self) -> str:
        """Canonical JSON (sorted keys) so that converting twice gives identical bytes."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        return build_config(cls, data, "config")

    @classmethod
    def load(cls, path: str | Path) -> "ModelConfig":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path} not found; run `make convert` to create it") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path} is not valid JSON ({e}); re-run `make convert`") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must hold a JSON object; re-run `make convert`")
        try:
            return cls.from_dict(data)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None


# Fields added after schema version 1 was written: absent from a config.json, each takes fastai_audio's
# default, and one at that default is not written, so configs written before stay valid and
# byte-identical (their sha256 is pinned by references and cards).
LATE_FIELDS: dict[tuple[str, str], Any] = {("frontend", "silence_threshold"): 20,
                                           ("frontend", "silence_padding"): 200}
_LATE_BY_CLASS = {("FrontendConfig", name): d for (_, name), d in LATE_FIELDS.items()}

# Value rules beyond the type, per (dataclass, field); tuples are checked element by element.
# A config.json that breaks one would crash deep inside torch or silently change a detection.
_POSITIVE = (lambda v: v > 0, "> 0")
_NON_NEGATIVE = (lambda v: v >= 0, ">= 0")
_UNIT = (lambda v: 0 <= v <= 1, "in [0, 1]")
_RULES: dict[tuple[str, str], tuple[Callable[[Any], bool], str]] = {
    **{("FrontendConfig", f): _POSITIVE for f in (
        "duration", "resample_to", "f_max", "hop_length", "n_fft", "n_mels", "win_length", "n_mfcc",
        "filterbank_sample_rate", "max_to_pad", "segment_size", "silence_padding")},
    ("WindowingConfig", "clip_seconds"): _POSITIVE, ("WindowingConfig", "hop_seconds"): _POSITIVE,
    **{("FrontendConfig", f): _NON_NEGATIVE for f in ("f_min", "pad", "top_db")},
    ("HeadConfig", "lin_ftrs"): _POSITIVE, ("HeadConfig", "dropout"): _UNIT,
    ("ArchitectureConfig", "in_channels"): _POSITIVE,
    ("NormalizationConfig", "std"): _POSITIVE,
    ("AggregationConfig", "threshold"): _UNIT,
    ("AggregationConfig", "min_positive"): (lambda v: v >= 1, ">= 1"),
    ("ModelConfig", "positive_index"): _NON_NEGATIVE,
    ("ModelConfig", "classes"): (lambda v: v != "", "a non-empty name"),
}
_NON_EMPTY = {("HeadConfig", "lin_ftrs"), ("ModelConfig", "classes"),
              ("NormalizationConfig", "mean"), ("NormalizationConfig", "std")}
_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}
_PLURALS = {bool: "booleans", int: "integers", float: "finite numbers", str: "strings"}


def _describe(hint: Any) -> str:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        return " or ".join("null" if a is type(None) else _describe(a) for a in args)
    if typing.get_origin(hint) is tuple:
        return f"a list of {_PLURALS.get(args[0], 'values')}"
    if typing.get_origin(hint) is dict or dataclasses.is_dataclass(hint):
        return "an object"
    return _TYPE_NAMES.get(hint, str(hint))


def _is(hint: type, value: Any) -> bool:
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:   # JSON writes 100.0 as 100 and accepts NaN/Infinity: neither may pass
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, hint)


def _checked(hint: Any, value: Any, where: str) -> Any:
    """`value` if it has type `hint` (JSON lists become tuples), else ConfigError naming `where`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _checked(inner[0], value, where) if value is not None else _bad(hint, value, where)
        return _bad(hint, value, where)
    if dataclasses.is_dataclass(hint):
        return build_config(hint, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return _bad(hint, value, where)
        return tuple(_checked(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        return value if isinstance(value, dict) else _bad(hint, value, where)
    if hint is Any or _is(hint, value):
        return value
    return _bad(hint, value, where)


def _bad(hint: Any, value: Any, where: str) -> Any:
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    raise ConfigError(f"{where} must be {_describe(hint)}, got {shown}; fix that field or re-run "
                      "`make convert`")


def build_config(cls: type, data: Any, where: str) -> Any:
    """Strictly build dataclass `cls` from `data`: unknown and missing fields are errors, and so is
    a value of the wrong type (n_fft "2560") or out of range (n_fft -1), naming the field."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be an object, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}; this config was written "
                          "by another toolkit version or edited by hand: remove them or re-run "
                          "`make convert`")
    missing = sorted(n for n, f in fields.items() if n not in data and (cls.__name__, n) not in _LATE_BY_CLASS)
    if missing:
        raise ConfigError(f"{where}: missing field(s) {', '.join(missing)}; re-run `make convert`")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        value = _checked(hints[name], value, f"{where}.{name}")
        key = (cls.__name__, name)
        items = value if isinstance(value, tuple) else (value,)
        if key in _NON_EMPTY and not items:
            raise ConfigError(f"{where}.{name} must not be empty; fix that field or re-run `make convert`")
        rule = _RULES.get(key)
        if rule is not None and value is not None and not all(rule[0](v) for v in items):
            raise ConfigError(f"{where}.{name} must be {rule[1]}, got {value!r}; fix that field or "
                              "re-run `make convert`")
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"{where}: {e}") from None
