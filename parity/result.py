"""The parity result: the one schema `make parity` writes (parity.json), the reports render and the
publish gate reads. `run_parity` builds a `ParityResult`; `to_json()` is parity.json byte for byte
and `ParityResult.from_json` reads it back (`from_json(x).to_json() == x`).

JSON: UTF-8, keys sorted, 2-space indent, a final newline; numpy values as Python ones, tuples as
lists, and non-finite floats as the strings "Infinity", "-Infinity", "NaN" (bare Infinity is not
JSON and breaks strict parsers). Every field below is always present; `null` where it says so.

ParityResult (schema_version 1)
  schema_version        1
  profile               "legacy-exact": the runtime profile replayed
  weights_sha256        model.safetensors replayed       config_sha256   its config.json
  references_manifest_sha256   the references' manifest.json
  references_weights_sha256    the weights the references were recorded for
  weights_check         "verified" (the two weights agree) or "diagnostic: other weights"
                        (--diagnose-other-weights: never gates a publish)
  tolerances            ToleranceInfo: the criteria file applied
  files_selected        "all", or the sorted file names of --only
  environment           {python, torch, numpy, scipy, soundfile, libsndfile, safetensors,
                        platform, machine, threads, machine_fingerprint}: where the replay ran
                        (machine_fingerprint: parity/fingerprint.py)
  criteria              Criteria: which criteria applied and why
  unstable_seconds      UnstableSeconds, over every file's chained aggregate check
  passed                true when no check failed, no file errored and real_data did not fail
  first_failure         Location of the earliest failing check in pipeline order (isolated
                        before chained), or null
  files                 [FileResult], in the references' order
  summary               [SummaryRow], one per (stage, mode), in pipeline order
  real_data             upstream's real-data account (parity/upstream.py): {available: false,
                        passed: null, path, why} when it could not run, else {available: true,
                        path, passed, pad_crop_exact, segments: [{segment, raw_shape,
                        standardized_shape, clean_shape, shape_equal, tail_frames, tail_exact,
                        tail_all_zero_db, head_max_abs_db, head_mean_abs_db}], head_difference:
                        {max_abs_db, mean_abs_db}, quantization_effect_on_corpus: {max_abs_db,
                        mean_abs_db, clips, gain_db, wav}, explained_by_16bit_caches, explanation}
  runtime_files         {path under model/: sha256} of the runtime code the run exercised: the
                        gate refuses a publish once any of it changed (`runtime_files()`)
ToleranceInfo  version (2), sha256 (of the tolerances file), regime, safety_factor,
               envelope_sha256 (the envelope the tolerances were derived from)
Criteria       regime ("same_machine" | "cross_machine"), same_fingerprint, why, recorded_on,
               replayed_on (the two machines, described)
UnstableSeconds  seconds (legacy confidence within the envelope of the threshold), flips (of
               those, seconds whose decision differs)
FileResult     name; status ("ok" | "expected-error": legacy raised and clean refused too |
               "error"); legacy_error, clean_error (ErrorInfo or null); checks [Check], failing
               or not, sorted isolated first, then pipeline order, then clip; series (Series, or
               null when the chained replay did not finish)
ErrorInfo      type, message (first line); stage: where the clean side was (clean_error only;
               absent from legacy_error)
Series         time_s, legacy, clean (per-second confidence), threshold
Check          mode ("isolated": the stage fed legacy's own input | "chained": end to end);
               stage (model/stages.py STAGES); clip (index, or null for a whole-file check);
               layer (network block, "pooled", or null); passed; tolerance (the criterion:
               parity.metrics.Tolerance.to_dict(), or {exact: true, why} for an error check);
               metrics (see below); decisions (Decisions on aggregate checks, else null)
  metrics      a compared tensor: parity.metrics.compare's {n, n_out, fraction_out, max_abs,
               mean_abs, max_rel, rms, snr_db, p99_abs, p999_abs, rel_to_max, max_log_power_db,
               excess, worst: {index, axes, ref, got} | null} (+ shape_mismatch: [ref shape, got
               shape] when the shapes differ); a sha256-compared stage: {n, n_out, fraction_out,
               max_abs..snr_db: null, worst, compared: "sha256"}; an error check: {legacy_error?,
               clean_error} (ErrorInfo as objects)
Decisions      rows_ref, rows_clean, local_agreement, local_flips (seconds whose decision differs
               outside the unstable band), unstable_flips, unstable_seconds, unstable_band,
               min_distance (nearest legacy confidence to the threshold), global_ref,
               global_clean, global_unstable, global_confidence_ref, global_confidence_clean
SummaryRow     stage, mode, checks, failed, max_abs (worst over the checks), worst_file, passed
Location       file, mode, stage, clip, layer
"""

from __future__ import annotations

import functools
import json
import math
import sys
import types
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Mapping, Union, get_args, get_origin, get_type_hints

import numpy as np

import orcaport.model
from orcaport.model.errors import InputError
from orcaport.model.fileio import sha256_file

SCHEMA_VERSION = 1
RUNTIME_SOURCES = Path(orcaport.model.__file__).resolve().parent   # shipped as the runtime
OMIT_NONE = {"omit_none": True}       # field metadata: left out of the JSON when None


class ResultError(InputError):
    """A parity result (parity.json) does not follow this schema; str() names the field."""


def json_safe(obj: Any) -> Any:
    """Strict-JSON copy: numpy scalars/arrays to Python, tuples to lists, Paths to str, and
    non-finite floats (snr_db is +inf for identical tensors) to 'Infinity'/'-Infinity'/'NaN'."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return json_safe(_dump(obj))
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        return json_safe(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return "NaN" if math.isnan(obj) else ("Infinity" if obj > 0 else "-Infinity")
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _dump(obj: Any) -> Any:
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _dump(getattr(obj, f.name)) for f in fields(obj)
                if not (f.metadata.get("omit_none") and getattr(obj, f.name) is None)}
    if isinstance(obj, (list, tuple)):
        return [_dump(v) for v in obj]
    return obj


_FLOAT_WORDS = ("Infinity", "-Infinity", "NaN")
_PRIMITIVES = {bool: lambda v: isinstance(v, bool), str: lambda v: isinstance(v, str),
               int: lambda v: isinstance(v, int) and not isinstance(v, bool),
               float: lambda v: (isinstance(v, (int, float)) and not isinstance(v, bool))
               or v in _FLOAT_WORDS}


def _load(tp: Any, value: Any, where: str) -> Any:
    """`value` (parsed JSON) as type `tp`, or ResultError naming `where`."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None and len(args) < len(get_args(tp)):
            return None
        for arg in args:
            if len(args) == 1 or isinstance(value, get_origin(arg) or arg):
                return _load(arg, value, where)
        raise ResultError(f"{where} is {type(value).__name__}, not {tp}")
    if is_dataclass(tp):
        return tp.from_dict(value, where)
    if origin is list or origin is dict:
        if not isinstance(value, origin):
            raise ResultError(f"{where} must be a JSON {'array' if origin is list else 'object'}")
        if origin is dict:
            return value
        return [_load(get_args(tp)[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp in _PRIMITIVES and not _PRIMITIVES[tp](value):
        raise ResultError(f"{where} is {value!r}, not a {tp.__name__}")
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls, vars(sys.modules[__name__]))


class Record:
    """to_dict / from_dict for the dataclasses below (nested records included)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of this record (what parity.json holds for it)."""
        return json_safe(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> Any:
        """Build from parsed JSON; ResultError on a missing, unknown or mistyped field."""
        name = where or cls.__name__
        if not isinstance(data, dict):
            raise ResultError(f"{name} must be a JSON object")
        known = {f.name: f for f in fields(cls)}
        missing = [n for n, f in known.items() if n not in data and f.default is MISSING
                   and f.default_factory is MISSING]
        if missing:
            raise ResultError(f"missing field(s) {', '.join(missing)}" + (f" in {where}" if where else ""))
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ResultError(f"unknown field(s) {', '.join(unknown)}" + (f" in {where}" if where else ""))
        hints = _hints(cls)
        return cls(**{n: _load(hints[n], data[n], f"{where}.{n}" if where else n) for n in data})


@dataclass
class ErrorInfo(Record):
    type: str
    message: str
    stage: str | None = field(default=None, metadata=OMIT_NONE)


@dataclass
class Decisions(Record):
    rows_ref: int
    rows_clean: int
    local_agreement: float
    local_flips: list[int]
    unstable_flips: list[int]
    unstable_seconds: int
    unstable_band: float
    min_distance: float | None
    global_ref: int
    global_clean: int
    global_unstable: bool
    global_confidence_ref: float
    global_confidence_clean: float


@dataclass
class Check(Record):
    mode: str
    stage: str
    clip: int | None
    layer: str | None
    passed: bool
    tolerance: dict[str, Any]
    metrics: dict[str, Any]
    decisions: Decisions | None = None


@dataclass
class Series(Record):
    time_s: list[int]
    legacy: list[float]
    clean: list[float]
    threshold: float


@dataclass
class FileResult(Record):
    name: str
    status: str
    legacy_error: ErrorInfo | None
    clean_error: ErrorInfo | None
    checks: list[Check]
    series: Series | None


@dataclass
class SummaryRow(Record):
    stage: str
    mode: str
    checks: int
    failed: int
    max_abs: float
    worst_file: str | None
    passed: bool


@dataclass
class Location(Record):
    file: str | None
    mode: str | None
    stage: str | None
    clip: int | None
    layer: str | None


@dataclass
class Criteria(Record):
    regime: str
    same_fingerprint: bool
    why: str
    recorded_on: str
    replayed_on: str


@dataclass
class ToleranceInfo(Record):
    version: int
    sha256: str
    regime: str
    safety_factor: float
    envelope_sha256: str


@dataclass
class UnstableSeconds(Record):
    seconds: int
    flips: int


@dataclass
class ParityResult(Record):
    schema_version: int
    profile: str
    weights_sha256: str
    config_sha256: str
    references_manifest_sha256: str
    references_weights_sha256: str
    weights_check: str
    tolerances: ToleranceInfo
    files_selected: str | list[str]
    environment: dict[str, Any]
    criteria: Criteria
    unstable_seconds: UnstableSeconds
    passed: bool
    first_failure: Location | None
    files: list[FileResult]
    summary: list[SummaryRow]
    real_data: dict[str, Any]
    runtime_files: dict[str, str]

    def to_json(self) -> str:
        """parity.json's exact text."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=2, allow_nan=False,
                          ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> "ParityResult":
        """Read parity.json's text; ResultError when it is not JSON or not this schema."""
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as e:
            raise ResultError(f"not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise ResultError("not a JSON object")
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ResultError(f"schema_version {data.get('schema_version')!r}, not {SCHEMA_VERSION}")
        return cls.from_dict(data)

    def all_checks(self) -> list[Check]:
        return [c for f in self.files for c in f.checks]


def runtime_files(package: Path = RUNTIME_SOURCES) -> dict[str, str]:
    """{path under `package`: sha256} of every module of it imported so far in this process.

    Called at the end of a parity run, that is exactly the runtime code the run exercised; the
    run records it as `runtime_files` and the gate then refuses a publish once any of it changed.
    """
    root, out = package.resolve(), {}
    for module in list(sys.modules.values()):
        path = Path(getattr(module, "__file__", None) or "/").resolve()
        if path.is_relative_to(root) and path.is_file():
            out[path.relative_to(root).as_posix()] = sha256_file(path)
    return dict(sorted(out.items()))
