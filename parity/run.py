"""`make parity`: replay every corpus file against its references and assemble the parity result
(`ParityResult`, parity/result.py)."""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path
from typing import Any, Callable

import numpy as np
import safetensors
import scipy
import soundfile
import torch

from orcaport.model.artifact import Artifact, load_artifact
from orcaport.model.errors import InputError
from orcaport.model.stages import STAGE_ORDER, STAGES
from orcaport.parity.audio_manifest import AudioFolderError, verify
from orcaport.parity.fingerprint import describe, fingerprint, same_machine
from orcaport.parity.metrics import DEFAULT_TOLERANCES, OPTION_TOLERANCE, Tolerance
from orcaport.parity.references import FileReference, ReferencesError, load_references
from orcaport.parity.replay import Heatmaps, replay_file
from orcaport.parity.result import (SCHEMA_VERSION, Criteria, FileResult, Location, ParityResult, SummaryRow,
                                    ToleranceInfo, UnstableSeconds, runtime_files)
from orcaport.parity.upstream import check_upstream

FLAGSHIP = "hydrophone_48k_mono16_60s.wav"   # level-matched stand-in for the upstream recording
PROFILE = "legacy-exact"


class ToleranceError(InputError):
    """The tolerances file is missing or malformed (one line, naming the fix)."""


REGIMES = ("same_machine", "cross_machine")


def load_tolerances(path: Path = DEFAULT_TOLERANCES, regime: str = "cross_machine", mode: str = "windowed"
                    ) -> tuple[ToleranceInfo, dict[str, Tolerance]]:
    """The `regime` criteria of a tolerances file (version 2: derived from the envelope by
    `python -m orcaport.parity.envelope derive`) for parity of `mode`. A predict-mode file (derived
    from `make predict-envelope`) serves predict parity only; a windowed file's own option-stage
    entries serve windowed parity only (predict runs those stages under their parents' entries)."""
    fix = "restore parity/tolerances.json from git or run `python -m orcaport.parity.envelope derive`"
    if regime not in REGIMES:
        raise ToleranceError(f"unknown criteria {regime!r}; one of {', '.join(REGIMES)}")
    try:
        raw = path.read_bytes()
        data = json.loads(raw)
        if data["version"] != 2:
            raise ValueError(f"version {data['version']} is not 2")
        tols = {name: Tolerance.from_dict(d[regime]) for name, d in data["stages"].items()}
        file_mode = data.get("mode", "windowed")
        info = ToleranceInfo(version=data["version"], sha256=hashlib.sha256(raw).hexdigest(),
                             regime=regime, safety_factor=data["safety_factor"],
                             envelope_sha256=data["envelope_sha256"])
    except OSError as e:
        raise ToleranceError(f"cannot read tolerances {path} ({e.strerror or e}); {fix}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ToleranceError(f"{path} is not a tolerances file ({type(e).__name__}: {e}); {fix}") from None
    if file_mode == "predict":      # the stages its envelope measured: predict parity checks each
        if mode != "predict":
            raise ToleranceError(f"{path} holds predict-mode tolerances (`make predict-envelope`); windowed "
                                 "parity takes parity/tolerances.json or the file `make tolerances` derives")
        return info, tols
    missing = [s for s in STAGES + ("pooled",) if s not in tols]
    if missing:
        raise ToleranceError(f"{path} has no tolerance for stage(s) {missing}; {fix}")
    if mode == "predict":
        tols = {name: t for name, t in tols.items() if name not in OPTION_TOLERANCE}
    return info, tols


def criteria(recorded: dict[str, Any] | None, replayed: dict[str, Any], forced: str | None = None
             ) -> Criteria:
    """Which criteria apply: same-machine ones only when both fingerprints agree on everything that
    selects kernels (parity/fingerprint.py), else the cross-machine ones from the envelope."""
    same = same_machine(recorded, replayed)
    regime = forced or ("same_machine" if same else "cross_machine")
    why = ("forced by --criteria" if forced else
           "references and replay share a machine fingerprint" if same else
           "fingerprints differ" if recorded and recorded.get("probed") else
           "the references' machine was not probed")
    return Criteria(regime=regime, same_fingerprint=same, why=why,
                    recorded_on=describe(recorded), replayed_on=describe(replayed))


def environment() -> dict[str, Any]:
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "scipy": scipy.__version__, "soundfile": soundfile.__version__,
            "libsndfile": soundfile.__libsndfile_version__, "safetensors": safetensors.__version__,
            "platform": platform.platform(), "machine": platform.machine(),
            "threads": torch.get_num_threads(), "machine_fingerprint": fingerprint()}


def summarize(files: list[FileResult]) -> list[SummaryRow]:
    rows: dict[tuple[str, str], SummaryRow] = {}
    for f in files:
        for c in f.checks:
            row = rows.setdefault((c.stage, c.mode), SummaryRow(
                stage=c.stage, mode=c.mode, checks=0, failed=0, max_abs=0.0, worst_file=None,
                passed=True))
            row.checks += 1
            row.failed += not c.passed
            row.passed = row.passed and c.passed
            m = c.metrics.get("max_abs")
            if m is not None and (m > row.max_abs or row.worst_file is None):
                row.max_abs, row.worst_file = m, f.name
    order = {s: i for i, s in enumerate(STAGE_ORDER)}
    return sorted(rows.values(), key=lambda r: (order[r.stage], r.mode != "isolated"))


def first_failure(files: list[FileResult]) -> Location | None:
    """The earliest failing stage in pipeline order; isolated first, since it blames one stage."""
    order = {s: i for i, s in enumerate(STAGE_ORDER)}
    failing = [(order[c.stage], c.mode != "isolated", fi, c, f.name)
               for fi, f in enumerate(files) for c in f.checks if not c.passed]
    if not failing:
        return None
    _, _, _, c, name = min(failing, key=lambda t: t[:3])
    return Location(file=name, mode=c.mode, stage=c.stage, clip=c.clip, layer=c.layer)


def unstable_count(files: list[FileResult]) -> UnstableSeconds:
    """Seconds whose legacy confidence lies within the envelope of the threshold (chained), and
    the decisions that flipped there: shown in every report, even when zero."""
    seconds = flips = 0
    for f in files:
        for c in f.checks:
            if c.decisions is not None and c.mode == "chained":
                seconds += c.decisions.unstable_seconds
                flips += len(c.decisions.unstable_flips)
    return UnstableSeconds(seconds=seconds, flips=flips)


def check_corpus(files: list[FileReference], corpus: Path) -> None:
    """Every audio file the run reads must be the one the references were recorded from."""
    try:
        verify(corpus, [{"name": f.name, "sha256": f.entry["audio_sha256"],
                         **({"wav_sha256": f.entry["wav_sha256"]} if "wav_sha256" in f.entry else {})}
                        for f in files])
    except AudioFolderError as e:
        raise ReferencesError(str(e)) from None


def run_parity(model_dir: Path, refs_dir: Path, corpus: Path, tolerances: Path = DEFAULT_TOLERANCES,
               progress: Callable[[str], None] | None = None,
               upstream: Path | None = None,
               diagnose_other_weights: bool = False,
               only: list[str] | None = None,
               regime: str | None = None) -> tuple[ParityResult, Heatmaps]:
    """`diagnose_other_weights` replays weights the references were *not* made for, to localise
    how they differ; such a report says so and can never gate a publish."""
    art: Artifact = load_artifact(model_dir)
    refs = load_references(refs_dir)
    refs_weights = refs.manifest["model"]["weights_sha256"]
    if refs_weights != art.weights_sha256 and not diagnose_other_weights:
        raise ReferencesError(f"references were recorded for weights {refs.manifest['model']['weights_sha256']}"
                             f", not {art.weights_sha256} in {model_dir}; re-run `make references`")
    # the real-data check reads the flagship even when --only leaves it out: verify it too
    flagship = [f for f in refs.files if f.name == FLAGSHIP]
    if only:
        unknown = sorted(set(only) - {f.name for f in refs.files})
        if unknown:
            raise ReferencesError(f"no reference for {unknown}; known: {[f.name for f in refs.files]}")
        refs.files = [f for f in refs.files if f.name in only]
    check_corpus(refs.files + [f for f in flagship if f not in refs.files], corpus)
    env = environment()
    applied = criteria(refs.manifest.get("machine"), env["machine_fingerprint"], regime)
    tol_info, tols = load_tolerances(tolerances, applied.regime)
    files, heatmaps = [], {}
    for f in refs.files:
        if progress:
            progress(f.name)
        result, maps = replay_file(f, corpus / f.name, art, tols)
        files.append(result)
        heatmaps.update(maps)
    failure = first_failure(files)
    if flagship:
        real = check_upstream(upstream, art.config.frontend, corpus / FLAGSHIP)
    else:   # the account needs the level-matched hydrophone file of the embedded corpus
        real = {"available": False, "passed": None, "path": str(upstream) if upstream else None,
                "why": f"{FLAGSHIP} is not in these references, so the real-data account does not apply"}
    return ParityResult(
        schema_version=SCHEMA_VERSION, profile=PROFILE,
        weights_sha256=art.weights_sha256, config_sha256=art.config_sha256,
        references_manifest_sha256=refs.manifest_sha256, tolerances=tol_info,
        weights_check="verified" if refs_weights == art.weights_sha256 else "diagnostic: other weights",
        references_weights_sha256=refs_weights,
        files_selected="all" if not only else sorted(only),
        environment=env, criteria=applied,
        unstable_seconds=unstable_count(files), passed=failure is None and real["passed"] is not False,
        first_failure=failure, files=files, summary=summarize(files), real_data=real,
        # the model/ code this run exercised: the publish gate refuses once any of it changes
        runtime_files=runtime_files(),
    ), heatmaps
