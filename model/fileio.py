"""Crash-safe writing and file hashing: the one implementation every writer and reader uses.

Runs in BOTH environments: the clean runtime (`orcaport detect --output`/`--follow`, weights),
parity (reports, corpus, staging) and bench in the clean env, and `convert/` in the legacy env
(fastai 1.0.61's Python 3.11). Standard library only, so it imports anywhere; it lives in model/
because the runtime needs it and the runtime never imports parity.

Files. A writer stages each output as a hidden temp sibling, fsyncs it, and only then renames it
over the output (`os.replace`, atomic on POSIX), so a reader sees the old file or the new one,
never half of one. A SIGKILL cannot run cleanup code, so a killed writer may leave its temps
behind; they are named after it and removed by the next writer:

    .<output name>.<pid>-<random>.tmp        (a temp of `<output name>`, written by process <pid>)

`remove_stale_temps` (called before anything is staged) deletes the temps whose process is gone --
never those of a writer still running -- so temps cannot pile up, and they can never be mistaken
for outputs (readers open fixed names only).

Folders. `replace_folder` builds a whole folder in a scratch sibling and swaps it in the same way;
scratch folders are named `<kind>-<pid>-<random>` (`scratch_prefix`) and a killed run's are
removed, or its moved-aside previous folder put back, by the next (`recover_folder`).

Hashing. `sha256_file` (hashlib.file_digest: streamed, never the whole file in memory).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable

TEMP_SUFFIX = ".tmp"


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, streamed."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# ----------------------------------------------------------------------------- who owns a temp
def temp_prefix(name: str) -> str:
    """mkstemp prefix for a temp of output `name` written by this process."""
    return f".{name}.{os.getpid()}-"


def scratch_prefix(kind: str) -> str:
    """mkdtemp prefix for this process's scratch folder of `kind` (e.g. 'orcaport-refs')."""
    return f"{kind}-{os.getpid()}-"


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


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


# ----------------------------------------------------------------------------- files
def write_files_atomically(out_dir: Path, files: dict[str, bytes | str | Path]) -> list[Path]:
    """Write every file (bytes, str as UTF-8, or a Path's bytes) to a temp sibling first
    (fsynced), then os.replace them in, in the given order (put the file that pins the others
    last): no half-written outputs, and when anything fails nothing is replaced. A replaced file
    keeps its mode; a new one gets 0666 less the umask (mkstemp's 0600 would make it private).
    Temps left by a killed earlier run are removed first. Raises ValueError for a name that is not
    a plain file name inside `out_dir`, OSError when the folder cannot be written. -> the paths."""
    out_dir = Path(out_dir)
    for name in files:
        if Path(name).name != name or name in (".", ".."):
            raise ValueError(f"refusing to write {name!r}: not a plain file name inside {out_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out_dir, files)
    new_mode = 0o666 & ~_umask()
    staged: list[tuple[Path, Path]] = []
    try:
        for name, content in files.items():
            final = out_dir / name
            fd, tmp = tempfile.mkstemp(prefix=temp_prefix(name), suffix=TEMP_SUFFIX, dir=out_dir)
            staged.append((Path(tmp), final))
            with os.fdopen(fd, "wb") as f:
                f.write(content.read_bytes() if isinstance(content, Path) else
                        content.encode("utf-8") if isinstance(content, str) else content)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, final.stat().st_mode & 0o7777 if final.exists() else new_mode)
        for tmp, final in staged:
            os.replace(tmp, final)
        fsync_dir(out_dir)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
    return [final for _, final in staged]


def write_file_atomically(path: Path, content: bytes | str) -> Path:
    """One file, as write_files_atomically. -> the path."""
    path = Path(path)
    return write_files_atomically(path.parent, {path.name: content})[0]


def write_output_file(path: Path, content: bytes | str, flag: str = "--out") -> Path:
    """A command's output file, as write_file_atomically; an unwritable place is an OutputError
    (exit 5) naming the command-line `flag` that chose it. -> the path."""
    from orcaport.model.errors import OutputError

    try:
        return write_file_atomically(path, content)
    except OSError as e:
        raise OutputError(f"cannot write {path} ({e.strerror or e}); pass a writable {flag}") from None


def write_json_atomically(folder: Path, name: str, obj: object) -> Path:
    """`obj` as indented JSON in folder/name, written atomically. -> the path."""
    return write_files_atomically(Path(folder), {name: json.dumps(obj, indent=2) + "\n"})[0]


# ----------------------------------------------------------------------------- folders
def _scratch_kinds(dest: Path) -> tuple[str, str]:
    return f".{dest.name}.tmp", f".{dest.name}.old"


def recover_folder(dest: Path) -> None:
    """Undo what a killed `replace_folder` left beside `dest`: put back the previous folder it had
    moved aside (when no new one replaced it), then delete its scratch folders. Those of a run
    still going are left alone."""
    dest = Path(dest)
    parent = dest.parent
    for kind in reversed(_scratch_kinds(dest)):            # old first: it may hold the previous one
        prefix = f"{kind}-"
        for entry in sorted(os.listdir(parent)) if parent.is_dir() else []:
            if not entry.startswith(prefix) or not is_stale(entry, prefix):
                continue
            if kind.endswith(".old") and not dest.exists() and (parent / entry / "previous").is_dir():
                os.replace(parent / entry / "previous", dest)
            shutil.rmtree(parent / entry, ignore_errors=True)


def replace_folder(dest: Path, build: Callable[[Path], None]) -> None:
    """`build(scratch)` fills a scratch sibling of `dest` (mode 0777 less the umask), which then
    replaces `dest` in one rename; an existing `dest` is moved aside first (a rename cannot replace
    a non-empty folder) and put back if anything fails. A killed earlier run is recovered first."""
    dest = Path(dest)
    tmp_kind, old_kind = _scratch_kinds(dest)
    recover_folder(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=scratch_prefix(tmp_kind), dir=dest.parent))
    old = None
    try:
        os.chmod(tmp, 0o777 & ~_umask())          # mkdtemp makes it 0700
        build(tmp)
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=scratch_prefix(old_kind), dir=dest.parent))
            os.replace(dest, old / "previous")
        os.replace(tmp, dest)
        fsync_dir(dest.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not dest.exists():
            os.replace(old / "previous", dest)   # put the previous folder back
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
