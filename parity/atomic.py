"""Crash-safe output writing shared by every writer (clean and legacy env: stdlib only).

A writer stages each output as a hidden temp sibling, fsyncs it, and only then renames it over the
output (`os.replace`, atomic on POSIX). A SIGKILL cannot run cleanup code, so a killed writer may
leave its temps behind; they are named after it and removed by the next writer:

    .<output name>.<pid>-<random>.tmp        (a temp of `<output name>`, written by process <pid>)

`remove_stale_temps` (called by every writer before it stages anything) deletes the temps whose
process is gone -- never those of a writer still running -- so temps cannot pile up, and they can
never be mistaken for outputs (readers open fixed names only). Scratch folders outside the output
folder follow the same rule (`scratch_prefix` / `remove_stale_scratch`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterable

TEMP_SUFFIX = ".tmp"


def temp_prefix(name: str) -> str:
    """mkstemp prefix for a temp of output `name` written by this process."""
    return f".{name}.{os.getpid()}-"


def pid_alive(pid: int) -> bool:
    """True while process `pid` exists (a zombie counts until its parent reaps it)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:     # someone else's live process
        return True
    return True


def _owner(entry: str, prefix: str) -> int | None:
    """The pid a temp/scratch name records after `prefix`, or None when it records none."""
    pid, sep, _ = entry[len(prefix):].partition("-")
    return int(pid) if sep and pid.isdigit() else None


def is_stale(entry: str, prefix: str) -> bool:
    """True when temp/scratch `entry` (named `prefix` + pid + '-' ...) belongs to no live process."""
    pid = _owner(entry, prefix)
    return pid is None or not pid_alive(pid)   # no pid: an older toolkit's temp, never live now


def remove_stale_temps(directory: Path, names: Iterable[str]) -> list[Path]:
    """Delete temps of outputs `names` in `directory` left by writers that no longer run."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    prefixes = [f".{name}." for name in names]
    removed = []
    for entry in os.listdir(directory):
        prefix = next((p for p in prefixes if entry.startswith(p)), None)
        if prefix is None or not entry.endswith(TEMP_SUFFIX) or not is_stale(entry, prefix):
            continue
        (directory / entry).unlink(missing_ok=True)
        removed.append(directory / entry)
    return removed


def fsync_dir(directory: Path) -> None:
    """Make the renames in `directory` durable (best effort where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def scratch_prefix(kind: str) -> str:
    """mkdtemp prefix for this process's scratch folder of `kind` (e.g. 'orcaport-refs')."""
    return f"{kind}-{os.getpid()}-"


def remove_stale_scratch(parent: Path, kind: str) -> list[Path]:
    """Delete `kind` scratch folders under `parent` whose process no longer runs."""
    parent = Path(parent)
    prefix = f"{kind}-"
    removed = []
    for entry in os.listdir(parent) if parent.is_dir() else []:
        if entry.startswith(prefix) and _owner(entry, prefix) is not None and is_stale(entry, prefix):
            shutil.rmtree(parent / entry, ignore_errors=True)
            removed.append(parent / entry)
    return removed


def write_files_atomically(out_dir: Path, files: dict[str, bytes | Path]) -> None:
    """Write every file to a temp sibling first (fsynced), then os.replace them in, in the given
    order (put the file that pins the others last): no half-written outputs. Temps left by a
    killed earlier run are removed first. Raises ValueError for a name that is not a plain file
    name inside `out_dir`, OSError when the folder cannot be written."""
    import tempfile

    for name in files:
        if Path(name).name != name or name in (".", ".."):
            raise ValueError(f"refusing to write {name!r}: not a plain file name inside {out_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out_dir, files)
    umask = os.umask(0)
    os.umask(umask)
    staged: list[tuple[Path, Path]] = []
    try:
        for name, content in files.items():
            fd, tmp = tempfile.mkstemp(prefix=temp_prefix(name), suffix=TEMP_SUFFIX, dir=out_dir)
            staged.append((Path(tmp), out_dir / name))
            with os.fdopen(fd, "wb") as f:
                f.write(content.read_bytes() if isinstance(content, Path) else content)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make artifacts private
        for tmp, final in staged:
            os.replace(tmp, final)
        fsync_dir(out_dir)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


def write_json_atomically(folder: Path, name: str, obj: object) -> Path:
    """`obj` as indented JSON in folder/name, written atomically. -> the path."""
    import json

    write_files_atomically(folder, {name: (json.dumps(obj, indent=2) + "\n").encode()})
    return folder / name
