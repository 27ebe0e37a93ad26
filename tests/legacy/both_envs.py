"""Run in the legacy env by tests/test_both_envs_legacy.py: import every convert/ module, report
which orcaport modules that loaded, and exercise the modules both environments share
(model/fileio.py, parity/testaudio/synth.py + training.py). Prints one RESULT json line."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import pkgutil
import sys
import tempfile
from pathlib import Path

import convert


def main() -> int:
    for m in pkgutil.iter_modules(convert.__path__):
        importlib.import_module(f"convert.{m.name}")
    loaded = sorted(k for k in sys.modules if k.startswith("orcaport."))
    docs = {k: sys.modules[k].__doc__ or "" for k in loaded}

    from orcaport.model import fileio
    from orcaport.parity.testaudio.training import training_example

    out: dict[str, object] = {"loaded": loaded, "docs": docs, "python": sys.version.split()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "src").write_bytes(b"\x00\x01")
        paths = fileio.write_files_atomically(d, {"a.bin": b"\x00\x01", "b.txt": "é\n", "c.bin": d / "src"})
        (d / "src").unlink()
        fileio.write_json_atomically(d, "d.json", {"k": [1, 2]})
        (d / f".a.bin.{2 ** 22 + 7}-x.tmp").write_bytes(b"stale")    # a pid that cannot be running
        fileio.write_file_atomically(d / "a.bin", b"new")            # removes the stale temp first

        def build(folder: Path) -> None:
            (folder / "x").write_text("built")
        fileio.replace_folder(d / "folder", build)
        fileio.replace_folder(d / "folder", build)                   # replaces an existing one
        out["fileio"] = {
            "files": sorted(os.listdir(d)), "paths": [p.name for p in paths],
            "a": (d / "a.bin").read_bytes().hex(), "b": (d / "b.txt").read_text(encoding="utf-8"),
            "c": (d / "c.bin").read_bytes().hex(), "d": json.loads((d / "d.json").read_text()),
            "folder": sorted(os.listdir(d / "folder")),
            "sha256": fileio.sha256_file(d / "b.txt") == hashlib.sha256("é\n".encode()).hexdigest(),
        }
    out["synth_sha256"] = hashlib.sha256(training_example(9, 0, True).tobytes()
                                         + training_example(9, 1, False).tobytes()).hexdigest()
    print("RESULT " + json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
