"""model/fileio.py, the one atomic writer and file hasher: replaced files keep their mode, a failed
write replaces nothing, a failed folder build leaves the previous folder, and the hash is sha256."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from orcaport.model.fileio import replace_folder, sha256_file, write_file_atomically, write_files_atomically


def test_sha256_file_is_the_sha256_of_the_bytes(tmp_path: Path) -> None:
    data = os.urandom(3 << 20)       # more than one read block
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()


def test_a_replaced_file_keeps_its_mode_and_a_new_one_follows_the_umask(tmp_path: Path) -> None:
    private = tmp_path / "private.json"
    private.write_text("old")
    private.chmod(0o600)
    write_file_atomically(private, "new")
    assert private.read_text() == "new" and private.stat().st_mode & 0o777 == 0o600
    umask = os.umask(0o022)
    try:
        fresh = write_file_atomically(tmp_path / "fresh.txt", b"x")
    finally:
        os.umask(umask)
    assert fresh.stat().st_mode & 0o777 == 0o644


def test_nothing_is_replaced_when_one_file_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("old a")
    with pytest.raises(ValueError, match="not a plain file name"):
        write_files_atomically(tmp_path, {"a": "new a", "../b": "escape"})
    with pytest.raises(TypeError):
        write_files_atomically(tmp_path, {"a": "new a", "b": object()})   # not bytes, str or Path
    assert sorted(os.listdir(tmp_path)) == ["a"] and (tmp_path / "a").read_text() == "old a"


def test_a_failed_folder_build_leaves_the_previous_folder(tmp_path: Path) -> None:
    dest = tmp_path / "model"
    replace_folder(dest, lambda d: (d / "v").write_text("1"))
    assert (dest / "v").read_text() == "1" and dest.stat().st_mode & 0o700 == 0o700

    def broken(d: Path) -> None:
        (d / "v").write_text("2")
        raise RuntimeError("killed while building")
    with pytest.raises(RuntimeError):
        replace_folder(dest, broken)
    assert sorted(os.listdir(tmp_path)) == ["model"] and (dest / "v").read_text() == "1"
    replace_folder(dest, lambda d: (d / "w").write_text("2"))
    assert sorted(os.listdir(dest)) == ["w"] and sorted(os.listdir(tmp_path)) == ["model"]
