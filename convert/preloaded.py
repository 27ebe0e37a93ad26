"""Legacy children forked from one preloaded interpreter instead of a fresh `python` each.

Every variant of `make envelope` is legacy run again under one kernel-path switch. A fresh process
pays about 7 CPU-s importing torch, fastai and fastai_audio before its first clip (measured on a
2-vCPU AMD EPYC, 2026-12-03), which for the envelope's nine short variant runs was most of the
work. A multiprocessing "forkserver" imports them once (PRELOAD) and forks each child from that
state. The switches still take effect per child because each is read when its library first
*computes*, not when it is imported: ATen's dispatch level at a DispatchStub's first call, MKL's
instruction set and reproducibility mode at its first call, oneDNN's ISA at its first primitive,
OpenMP's pool at its first parallel region. The forkserver only imports, with HOME pointing at a
scratch folder (imports that read HOME never see the user's; convert/preload_home.py sets it there,
the parent's HOME untouched). fastai_audio itself is imported again
in each child, under the child's own isolated HOME: its cache folder is a class default evaluated at
import (`AudioConfig.cache_dir = Path.home()/...`), and children sharing one cache would skip the very
stages they must capture (a concurrent variant's cache hit skips the load). A child checks that its
ATen level is the one it was given (an import that had computed would have fixed it; the child then
stops, naming --fresh-processes), and tests/test_envelope_legacy.py checks that forked variants give
the same tensors as fresh processes, bit for bit.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import sys
import threading
from pathlib import Path

from convert.preload_home import PRELOAD_HOME
from orcaport.model.errors import ExitCode

# What unpickling a fastai_audio learner and running it import (pandas and matplotlib come with them;
# librosa's audio module is imported lazily, through inspect.stack, on first use: ~1 s a child).
PRELOAD = ["convert.preload_home", "fastai.vision", "audio.data", "audio.learner", "librosa.core.audio",
           "convert.envelope_clips"]
_CONTEXT: multiprocessing.context.BaseContext | None = None
_STARTED = threading.Lock()      # held while the forkserver starts: the other children wait
_started = False


def context() -> multiprocessing.context.BaseContext:
    """The forkserver, preloaded on first use (it starts once, with the first child)."""
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = multiprocessing.get_context("forkserver")
        _CONTEXT.set_forkserver_preload(PRELOAD)
    return _CONTEXT


def start(home: Path) -> None:
    """Start the forkserver (once), its imports run with HOME=`home` (a scratch folder)."""
    global _started
    with _STARTED:
        if not _started:
            if os.environ.get(PRELOAD_HOME) != str(home):
                os.environ[PRELOAD_HOME] = str(home)
            proc = context().Process(target=_noop)
            proc.start()
            proc.join()
            _started = True


def start_in_background(home: Path) -> None:
    """`start` on a thread, so the imports overlap the caller's work. The one environment change
    (PRELOAD_HOME) is made here, before the thread exists: environments the caller copies from
    os.environ meanwhile are never copied mid-change."""
    os.environ[PRELOAD_HOME] = str(home)
    threading.Thread(target=start, args=(home,), daemon=True).start()


def _noop() -> None:
    pass


def forget_fastai_audio() -> None:
    """Drop the preloaded fastai_audio modules: the child imports them again under its own HOME
    (their heavy dependencies, librosa and torchaudio, stay loaded)."""
    for name in [m for m in sys.modules if m == "audio" or m.startswith("audio.")]:
        del sys.modules[name]


def aten_level_mismatch(env: dict[str, str]) -> str | None:
    """None when this process's ATen dispatch level is the one `env` asks for (or it asks none)."""
    wanted = env.get("ATEN_CPU_CAPABILITY")
    if not wanted:
        return None
    import torch

    got = torch.backends.cpu.get_cpu_capability()
    return None if got.lower() == wanted.lower() else f"ATEN_CPU_CAPABILITY={wanted} asked, {got} in effect"


def _child(env: dict[str, str], module: str, argv: list[str], stdout: str, stderr: str) -> None:
    """In the forked child: its own environment and output files, then `module.main(argv)`."""
    for fd, path in ((1, stdout), (2, stderr)):
        out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(out, fd)
        os.close(out)
    os.environ.clear()
    os.environ.update(env)
    forget_fastai_audio()
    mismatch = aten_level_mismatch(env)
    if mismatch:
        print(f"error: the preloaded interpreter already fixed the kernel path ({mismatch}): "
              "run `python -m convert.envelope ... --fresh-processes`", file=sys.stderr, flush=True)
        sys.exit(ExitCode.FAILED)
    code = importlib.import_module(module).main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)


def run_forked(env: dict[str, str], module: str, argv: list[str], logs: Path, home: Path) -> tuple[int, str, str]:
    """`python -m module argv` with environment `env`, forked from the preloaded interpreter (started
    on first use with HOME=`home`). -> (exit code, stdout, stderr); the output files stay in `logs`."""
    start(home)
    name = Path(argv[argv.index("--out") + 1]).name if "--out" in argv else module
    out, err = logs / f"{name}.stdout", logs / f"{name}.stderr"
    proc = context().Process(target=_child, args=(env, module, argv, str(out), str(err)), name=name)
    proc.start()
    proc.join()
    code = proc.exitcode if proc.exitcode is not None else ExitCode.FAILED
    if code < 0:        # killed by a signal: say which, as subprocess would
        code = 128 - code
    read = lambda p: p.read_text(errors="replace") if p.is_file() else ""   # noqa: E731
    return code, read(out), read(err)
