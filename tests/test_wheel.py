"""The installable distribution: a real wheel (not the editable install every other test uses),
installed into a fresh venv, run from a folder outside the checkout whose own `model.py` and
`parity.py` raise on import. `orcaport detect`, `python -m orcaport.parity` and the Python API
must work there from the wheel's own files (tolerances.json included), and the version must be the
package metadata's, which is pyproject.toml's.

The fresh venv gets this interpreter's third-party packages (torch, numpy, ...) through a `.pth`
line naming its site-packages; `.pth` files inside an appended folder are not processed, so this
env's editable orcaport is *not* visible there (asserted: every orcaport module resolves inside
the fresh venv). Building needs pip and setuptools (>= 70.1, or the wheel package) in this env;
only their absence skips the test -- a wheel that fails to build, or builds but does not work,
fails it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CORPUS, FIXTURE, REFS, ROOT

CLIP = "exact_2s0_48k_16.wav"           # one clip: the quickest replay that still runs every stage
PACKAGES = {"model": "orcaport/model", "parity": "orcaport/parity"}   # checkout folder -> wheel path
DECOY = 'raise ImportError("a decoy {name}.py in the working directory was imported")\n'


def _can_build() -> str | None:
    """Why no wheel can be built with this interpreter (None: it can). setuptools >= 70.1 carries
    bdist_wheel itself; older ones need the `wheel` package."""
    missing = [m for m in ("setuptools", "pip") if importlib.util.find_spec(m) is None]
    setuptools = importlib.util.find_spec("setuptools")          # located, not imported
    bundled = setuptools is not None and setuptools.origin is not None and \
        (Path(setuptools.origin).parent / "command" / "bdist_wheel.py").is_file()
    if not missing and not bundled and importlib.util.find_spec("wheel") is None:
        missing = ["setuptools>=70.1 (or wheel)"]
    return f"cannot build a wheel here: {', '.join(missing)} not installed in {sys.executable}" if missing else None


pytestmark = pytest.mark.skipif(_can_build() is not None, reason=str(_can_build()))


def _run(cmd: list[str | Path], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _ok(run: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert run.returncode == 0, f"{run.args}\nexit {run.returncode}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return run


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Build the wheel from a copy of the sources (the shared checkout gets no build/ or egg-info),
    install it into a fresh venv, and make a working directory full of decoys."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(ROOT / name, src / name)
    for folder in PACKAGES:
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = base / "dist"
    # an absolute path: pip would read a bare folder name as a requirement to look up in its indexes
    _ok(_run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
              "-q", "-w", dist, src.resolve()], base))
    wheels = sorted(dist.glob("orcaport-*.whl"))
    assert len(wheels) == 1, wheels
    venv = base / "venv"
    _ok(_run([sys.executable, "-m", "venv", "--without-pip", venv], base))
    python = venv / "bin" / "python"
    site = Path(_ok(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         base)).stdout.strip())
    (site / "third_party_from_clean_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _ok(_run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q",
              wheels[0]], base))
    work = base / "elsewhere"
    work.mkdir()
    for name in ("model", "parity"):
        (work / f"{name}.py").write_text(DECOY.format(name=name))
    return {"wheel": wheels[0], "venv": venv, "python": python, "orcaport": venv / "bin" / "orcaport",
            "site": site, "work": work}


def test_the_wheel_holds_every_package_and_its_data_files_and_nothing_else(installed: dict[str, Any]) -> None:
    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    want = {f"{wheel_dir}/{p.relative_to(ROOT / folder).as_posix()}"
            for folder, wheel_dir in PACKAGES.items()
            for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".json") and "__pycache__" not in p.parts}
    assert not want - names, f"missing from the wheel (pyproject packages / package-data): {sorted(want - names)}"
    tops = {n.split("/")[0] for n in names}
    assert tops == {"orcaport", installed["wheel"].name.split("-py")[0] + ".dist-info"}, tops


def test_version_is_the_package_metadata_and_pyproject_holds_it(installed: dict[str, Any]) -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    metadata = _ok(_run([installed["python"], "-c", "import importlib.metadata as m; print(m.version('orcaport'))"],
                        installed["work"])).stdout.strip()
    shown = _ok(_run([installed["orcaport"], "--version"], installed["work"])).stdout.strip()
    assert metadata == declared and shown == f"orcaport {declared}", (metadata, shown)


def test_the_api_imports_from_the_wheel_not_the_checkout_nor_the_decoys(installed: dict[str, Any]) -> None:
    code = ("import json, orcaport.model.detector as d, orcaport.parity.run as r, orcaport.model.cli as c\n"
            "from orcaport.model.detector import Detector\n"
            f"det = Detector.from_folder({str(FIXTURE)!r})\n"
            f"out = det.detect({str(CORPUS / CLIP)!r})\n"
            "print(json.dumps({'files': [d.__file__, r.__file__, c.__file__], 'clips': out.clips,"
            " 'rows': len(out.rows())}))")
    doc = json.loads(_ok(_run([installed["python"], "-c", code], installed["work"])).stdout)
    assert all(Path(f).is_relative_to(installed["site"] / "orcaport") for f in doc["files"]), doc["files"]
    assert doc["clips"] == 1 and doc["rows"] == 2


def test_detect_runs_from_the_installed_command(installed: dict[str, Any]) -> None:
    run = _ok(_run([installed["orcaport"], "detect", CORPUS / CLIP, "--model", FIXTURE, "--format", "json",
                    "--quiet"], installed["work"]))
    doc = json.loads(run.stdout)
    assert [f["wav_filename"] for f in doc["files"]] == [CLIP] and doc["errors"] == []
    assert len(doc["files"][0]["rows"]) == 2
    # no default model into a checkout: the installed command says which flag to pass
    bare = _run([installed["orcaport"], "detect", CORPUS / CLIP], installed["work"])
    assert bare.returncode == 2 and "pass --model DIR" in bare.stderr, bare.stderr


def test_parity_passes_from_the_installed_package(installed: dict[str, Any], tmp_path: Path) -> None:
    """Its tolerances (the default, package data) are read from the wheel's copy."""
    reports = tmp_path / "reports"
    run = _ok(_run([installed["python"], "-m", "orcaport.parity", "--model", FIXTURE, "--references", REFS,
                    "--audio", CORPUS, "--reports", reports, "--only", CLIP], installed["work"]))
    assert "PARITY PASSED" in run.stdout, run.stdout[-3000:]
    report = json.loads((reports / "parity.json").read_text())
    assert report["passed"] is True and [f["name"] for f in report["files"]] == [CLIP]
