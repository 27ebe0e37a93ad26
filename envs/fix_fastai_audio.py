"""The project's own Python 3.11 fix for an installed fastai_audio 0.1 (legacy env only).

Python 3.11 rejects `AudioConfig.sg_cfg`'s mutable dataclass default at import time
(ValueError: mutable default ... use default_factory). We turn that one default into a
`default_factory`, exactly as upstream OrcaHello does after installing. Idempotent; refuses to
guess if the installed file does not look like fastai_audio 0.1.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

DEFAULT = re.compile(r"^(\s*sg_cfg\s*:\s*SpectrogramConfig\s*=\s*)SpectrogramConfig\(\)\s*$", re.M)
FIXED = re.compile(r"^\s*sg_cfg\s*:\s*SpectrogramConfig\s*=\s*field\(default_factory=SpectrogramConfig\)",
                   re.M)
IMPORT = re.compile(r"^from dataclasses import ([^\n]*)$", re.M)


def fix(source: str) -> str:
    if FIXED.search(source):
        return source
    if len(DEFAULT.findall(source)) != 1:
        raise SystemExit("error: audio/data.py does not look like fastai_audio 0.1 (no single "
                         "`sg_cfg` default); check FASTAI_AUDIO_SPEC points at the 0.1 tag")
    source = DEFAULT.sub(r"\1field(default_factory=SpectrogramConfig)", source)
    imp = IMPORT.search(source)
    if imp is None:
        raise SystemExit("error: audio/data.py has no `from dataclasses import` line to extend")
    names = [n.strip() for n in imp.group(1).split(",")]
    if "field" not in names:
        source = source[:imp.start()] + "from dataclasses import " + ", ".join(names + ["field"]) + \
            source[imp.end():]
    return source


def main() -> None:
    spec = importlib.util.find_spec("audio")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("error: fastai_audio (package `audio`) is not installed in this env")
    data_py = Path(list(spec.submodule_search_locations)[0]) / "data.py"
    before = data_py.read_text()
    after = fix(before)
    if after != before:
        tmp = data_py.with_suffix(".py.tmp")
        tmp.write_text(after)
        tmp.replace(data_py)
        for cached in data_py.parent.glob("__pycache__/data.*.pyc"):
            cached.unlink()
        print(f"fixed {data_py} for Python {sys.version_info.major}.{sys.version_info.minor}")
    else:
        print(f"{data_py} already fixed")


if __name__ == "__main__":
    main()
