"""Where `Detector.from_pretrained` finds a model: a local folder, or a Hub repo through
huggingface_hub's own download and cache (HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE, `revision`).

Only data comes from the repo -- config.json, model.safetensors and the integrity files. The
runtime that runs them is the installed `orcaport` package: no code from a downloaded repo is ever
imported. Before the weights are used they are checked three ways: against SHA256SUMS when the repo
ships one, against the sha256 config.json pins (model/artifact.py), and against the sha256 the
caller pins (`weights_sha256=`), which is the one a tampered repo cannot forge along with its config.
"""

from __future__ import annotations

import json
from pathlib import Path

from orcaport.model.artifact import CONFIG_FILE, WEIGHTS_FILE
from orcaport.model.calibration import FILES as CALIBRATION_FILES
from orcaport.model.fileio import sha256_file
from orcaport.model.source import DetectorError

SUMS, REPORT = "SHA256SUMS", "parity.json"
# What a detector needs from a repo (the int8 calibration where the repo ships one: `--arithmetic
# int8` checks it against the weights itself); the model card, LICENSE and the rest stay on the Hub.
DOWNLOAD = [CONFIG_FILE, WEIGHTS_FILE, SUMS, REPORT, *CALIBRATION_FILES]


class IntegrityError(DetectorError):
    """A file of a downloaded/staged model folder does not match what vouches for it."""


def _download(repo_id: str, revision: str | None, cache_dir: str | Path | None,
              local_files_only: bool) -> Path:
    """snapshot_download of DOWNLOAD, every huggingface_hub failure as one line naming the fix."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (HFValidationError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    where = f"{repo_id}" + (f" at revision {revision}" if revision else "")
    try:
        return Path(snapshot_download(repo_id=repo_id, revision=revision, cache_dir=cache_dir,
                                      allow_patterns=DOWNLOAD, local_files_only=local_files_only))
    except HFValidationError:
        raise DetectorError(f"{repo_id!r} is neither a model folder nor a Hub repo id "
                            "(NAMESPACE/NAME); check the path or the name") from None
    except RevisionNotFoundError:
        raise DetectorError(f"the Hub has no revision {revision!r} of {repo_id}; pass an existing "
                            "branch, tag or commit as revision=") from None
    except RepositoryNotFoundError:
        raise DetectorError(f"the Hub has no model repo {repo_id} (or it is private: set HF_TOKEN); "
                            "check the name") from None
    except LocalEntryNotFoundError:
        # Offline (HF_HUB_OFFLINE=1 / local_files_only) and not cached, or the Hub unreachable.
        raise DetectorError(f"{where} is not in the Hugging Face cache and the Hub cannot be asked "
                            "(offline or unreachable); run it once online, or "
                            f"`hf download {repo_id}`, then retry") from None
    except OSError as e:   # HTTP errors, disk full, permissions: one line, never a traceback
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise DetectorError(f"downloading {where} failed ({first}); check the network, "
                            "HF_ENDPOINT and HF_TOKEN, then retry") from None


def verify_folder(folder: Path, weights_sha256: str | None = None) -> None:
    """Check config.json and model.safetensors against SHA256SUMS (when present), the caller's pin
    and parity.json (when present). load_artifact then checks the config's own pin."""
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (folder / name).is_file():
            raise IntegrityError(f"{folder} has no {name}; it is not a converted model folder "
                                 "(`make convert` writes one, `make publish` stages one)")
    if (folder / SUMS).is_file():
        listed = {}
        for line in (folder / SUMS).read_text().splitlines():
            digest, _, name = line.partition("  ")
            listed[name] = digest
        for name in (CONFIG_FILE, WEIGHTS_FILE, *CALIBRATION_FILES):
            if name in listed and (folder / name).is_file() and sha256_file(folder / name) != listed[name]:
                raise IntegrityError(f"{folder / name} does not match {SUMS}: corrupted or tampered; "
                                     "download it again")
    got = sha256_file(folder / WEIGHTS_FILE)
    if weights_sha256 is not None and got != weights_sha256.lower():
        raise IntegrityError(f"{folder / WEIGHTS_FILE} has sha256 {got}, not the pinned "
                             f"{weights_sha256}; refusing to use it (check the revision)")
    if (folder / REPORT).is_file():
        try:
            vouched = json.loads((folder / REPORT).read_text()).get("weights_sha256")
        except (ValueError, AttributeError):
            raise IntegrityError(f"{folder / REPORT} is unreadable; download it again") from None
        if vouched != got:
            raise IntegrityError(f"{folder / REPORT} does not vouch for {folder / WEIGHTS_FILE} "
                                 f"(parity ran on {str(vouched)[:12]}..., the file is {got[:12]}...)")


def resolve_pretrained(source: str | Path, revision: str | None = None,
                       cache_dir: str | Path | None = None, weights_sha256: str | None = None,
                       local_files_only: bool = False) -> Path:
    """A verified model folder for `source`: a local folder as is, else a Hub repo id downloaded
    (or served from the cache) by huggingface_hub. `revision` pins a branch, tag or commit."""
    folder = Path(source)
    if not folder.is_dir():
        if str(source).startswith((".", "/", "~")) or str(source).count("/") != 1:
            raise DetectorError(f"model {source} not found: pass a folder holding {WEIGHTS_FILE} + "
                                f"{CONFIG_FILE}, or a Hub repo id NAMESPACE/NAME")
        folder = _download(str(source), revision, cache_dir, local_files_only)
    verify_folder(folder, weights_sha256)
    return folder
