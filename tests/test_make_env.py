"""envs/make_env.sh never loses a working env: it builds beside, swaps a link, and refuses an
unreachable fastai_audio source before touching anything.

Each test runs the real script in a scratch copy of the project's layout (its own envs/ and a toy
pyproject.toml), so the builds take seconds and the checkout's own .venvs are never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.paths import ROOT

TOY_PYPROJECT = """[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "orcaport-env-test-toy"
version = "0.0.1"

[tool.setuptools]
packages = []
"""


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    (tmp_path / "envs").mkdir()
    for name in ("make_env.sh", "fix_fastai_audio.py"):
        shutil.copy2(ROOT / "envs" / name, tmp_path / "envs" / name)
    (tmp_path / "envs" / "clean.lock.txt").write_text("# nothing: the toy needs no packages\n")
    (tmp_path / "envs" / "legacy.lock.txt").write_text("# nothing\n")
    (tmp_path / "pyproject.toml").write_text(TOY_PYPROJECT)
    return tmp_path


def make_env(repo: Path, which: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "FASTAI_AUDIO_SPEC"}
    environ.update(env)
    return subprocess.run(["bash", str(repo / "envs" / "make_env.sh"), which], cwd=repo, env=environ,
                          capture_output=True, text=True, timeout=300)


def target_of(repo: Path, which: str) -> Path:
    link = repo / ".venvs" / which
    assert link.is_symlink(), f"{link} should be a link to the built env"
    return link.resolve()


def test_clean_env_is_built_beside_and_swapped(repo: Path) -> None:
    first = make_env(repo, "clean")
    assert first.returncode == 0, first.stderr
    built = target_of(repo, "clean")
    assert built.name.startswith("clean-") and (built / "bin" / "python").exists()
    inode = built.stat().st_ino

    again = make_env(repo, "clean")
    assert again.returncode == 0 and "is up to date" in again.stdout, again.stdout + again.stderr
    assert target_of(repo, "clean").stat().st_ino == inode

    # a pyproject change re-installs the project in place: the env itself is kept
    (repo / "pyproject.toml").write_text(TOY_PYPROJECT.replace("0.0.1", "0.0.2"))
    project = make_env(repo, "clean")
    assert project.returncode == 0 and "re-installing the project" in project.stdout, project.stderr
    assert target_of(repo, "clean").stat().st_ino == inode

    # a lock change is a new env beside the old one; the old one goes only after the swap
    with (repo / "envs" / "clean.lock.txt").open("a") as f:
        f.write("# changed\n")
    rebuilt = make_env(repo, "clean")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert target_of(repo, "clean") != built and not built.exists()


def test_failed_build_leaves_the_old_env_as_it_was(repo: Path) -> None:
    assert make_env(repo, "clean").returncode == 0
    built = target_of(repo, "clean")
    marker = built / "still-here"
    marker.write_text("work in progress")
    (repo / "envs" / "clean.lock.txt").write_text("orcaport-no-such-package-anywhere==0.0.0\n")
    failed = make_env(repo, "clean", PIP_NO_INDEX="1")
    assert failed.returncode != 0
    assert ".venvs/clean is unchanged" in failed.stderr, failed.stderr
    assert target_of(repo, "clean") == built and marker.read_text() == "work in progress"
    assert sorted(p.name for p in (repo / ".venvs").iterdir()) == ["clean", built.name]


def _old_style_legacy_env(repo: Path) -> Path:
    """An env as an earlier version left it: a real folder with an outdated stamp."""
    env = repo / ".venvs" / "legacy"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").write_text("#!/bin/sh\n")
    (env / ".stamp").write_text("0" * 64 + "\n")
    return env


def test_unreachable_local_spec_refuses_before_touching_the_env(repo: Path) -> None:
    env = _old_style_legacy_env(repo)
    before = sorted(p.name for p in env.rglob("*"))
    missing = repo / "no" / "fastai_audio-0.1"
    r = make_env(repo, "legacy", FASTAI_AUDIO_SPEC=str(missing))
    assert r.returncode == 3, r.stderr
    line = r.stderr.strip()
    assert "\n" not in line and str(missing) in line and "FASTAI_AUDIO_SPEC=" in line
    assert ".venvs/legacy is unchanged" in line
    assert not env.is_symlink() and sorted(p.name for p in env.rglob("*")) == before
    assert [p.name for p in (repo / ".venvs").iterdir()] == ["legacy"]


@pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0,
                    reason="blocking the network needs `unshare -n` as root")
def test_offline_default_tag_refuses_naming_the_spec_variable(repo: Path) -> None:
    env = _old_style_legacy_env(repo)
    environ = {k: v for k, v in os.environ.items() if k != "FASTAI_AUDIO_SPEC"}
    r = subprocess.run(["unshare", "-n", "bash", str(repo / "envs" / "make_env.sh"), "legacy"],
                       cwd=repo, env=environ, capture_output=True, text=True, timeout=120)
    if r.returncode != 0 and "unshare" in r.stderr and "FASTAI_AUDIO_SPEC" not in r.stderr:
        pytest.skip(f"unshare -n is not allowed here: {r.stderr.strip()}")
    assert r.returncode == 3, r.stderr
    assert "is not reachable" in r.stderr and "FASTAI_AUDIO_SPEC=" in r.stderr, r.stderr
    assert (env / "bin" / "python").exists() and not env.is_symlink()


@pytest.mark.legacy
def test_the_legacy_env_remembers_its_spec() -> None:
    """With no FASTAI_AUDIO_SPEC and no envs/local.mk, the checkout's legacy env is up to date as
    built (the README flow: only `make env-legacy` is given the spec)."""
    if (ROOT / "envs" / "local.mk").exists():
        pytest.skip("envs/local.mk sets the spec here; the remembered spec is used only without it")
    link = ROOT / ".venvs" / "legacy"
    if not link.exists():
        pytest.skip(f"no legacy env: {link} missing (run `make env-legacy`)")
    if not (link / ".spec").exists():
        pytest.skip(".venvs/legacy was built by an older make_env.sh (no remembered spec)")
    inode, stamp = link.resolve().stat().st_ino, (link / ".stamp-env").read_text()
    r = make_env(ROOT, "legacy")
    assert r.returncode == 0 and "from the spec .venvs/legacy was built from" in r.stdout, r.stderr
    assert link.resolve().stat().st_ino == inode and (link / ".stamp-env").read_text() == stamp
