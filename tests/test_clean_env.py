"""House rule: the clean side never imports legacy-only modules and never unpickles; torchvision
only as `torchvision.models` (module definitions) in model/bodies.py; an optional
extra (scikit-learn, the `evaluate` extra) is imported only by the package that needs it."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CORPUS, FIXTURE, REFS, ROOT

CLEAN_PACKAGES = ("model", "parity")
FORBIDDEN_MODULES = ("fastai", "audio", "fastai_audio", "torchaudio", "librosa",
                     "pandas", "pydub", "pickle", "dill", "cloudpickle", "joblib")
# torchvision is allowed for its module definitions only, and only where the bodies are built.
TORCHVISION_ALLOWED = "torchvision.models"
TORCHVISION_USER = Path("model") / "bodies.py"
FORBIDDEN_CALLS = ("torch.load", "pickle.load", "pickle.loads", "np.load", "numpy.load",
                   "torch.jit.load", "Unpickler")
# Optional extras: top-level module -> the one package (relative to ROOT) allowed to import it.
EXTRAS = {"sklearn": Path("parity") / "evaluation", "ray": Path("model") / "scale" / "ray_detect.py"}
HAVE_SKLEARN = importlib.util.find_spec("sklearn") is not None
INSTALLED = {top for top in EXTRAS if importlib.util.find_spec(top) is not None}


def _clean_sources() -> list[Path]:
    files = [p for pkg in CLEAN_PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]
    assert files, "no clean sources found"
    return files


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    return ""


@pytest.mark.parametrize("path", _clean_sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_clean_source_has_no_forbidden_import_or_unpickling(path: Path) -> None:
    _check_source(path.read_text(), path)


@pytest.mark.parametrize("source, where, bad", [
    ("from torchvision import transforms", TORCHVISION_USER, "torchvision.transforms"),
    ("import torchvision.io", TORCHVISION_USER, "torchvision.io"),
    ("import torchvision", TORCHVISION_USER, "torchvision;"),
    ("import torchvision.models as m", Path("model") / "network.py", "only model/bodies.py"),
    ("import torchaudio.transforms", TORCHVISION_USER, "torchaudio"),
])
def test_the_torchvision_rule_refuses_anything_but_models_in_bodies(source: str, where: Path, bad: str) -> None:
    with pytest.raises(AssertionError, match=bad.replace(".", r"\.")):
        _check_source(source, ROOT / where)
    _check_source("import torchvision.models as tv_models\nfrom torchvision import models",
                  ROOT / TORCHVISION_USER)


def _check_source(source: str, path: Path) -> None:
    tree = ast.parse(source, filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            names = []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "torchvision":
            names = [f"torchvision.{a.name}" for a in node.names]   # from torchvision import models
        for name in names:
            top = name.split(".")[0]
            assert top not in FORBIDDEN_MODULES, f"{path}:{node.lineno} imports {name}"
            if top == "torchvision":
                assert name == TORCHVISION_ALLOWED or name.startswith(TORCHVISION_ALLOWED + "."), \
                    f"{path}:{node.lineno} imports {name}; only {TORCHVISION_ALLOWED} is allowed"
                assert path.relative_to(ROOT) == TORCHVISION_USER, \
                    f"{path}:{node.lineno} imports torchvision; only {TORCHVISION_USER} builds bodies"
            if top in EXTRAS:
                assert path.relative_to(ROOT).is_relative_to(EXTRAS[top]), \
                    f"{path}:{node.lineno} imports the optional {top}; only {EXTRAS[top]}/ may"
        if isinstance(node, ast.Call):
            called = _dotted(node.func)
            assert not any(called == f or called.endswith("." + f) for f in FORBIDDEN_CALLS), \
                f"{path}:{node.lineno} calls {called}"


def _modules(with_extras: bool) -> list[str]:
    """Import names of the clean sources; the extras' packages only when `with_extras`."""
    paths = [p for p in _clean_sources()
             if not any(p.relative_to(ROOT).is_relative_to(d) and not (with_extras and top in INSTALLED)
                        for top, d in EXTRAS.items())]
    modules = ["orcaport." + ".".join(p.relative_to(ROOT).with_suffix("").parts) for p in paths]
    return [m.removesuffix(".__init__") for m in modules if not m.endswith("__main__")]


def test_importing_every_clean_module_loads_no_forbidden_module() -> None:
    """Catches indirect imports (a clean module importing a helper that imports pandas...). The
    evaluate extra's package is imported too where scikit-learn is installed (CI installs it)."""
    modules = _modules(with_extras=HAVE_SKLEARN)
    code = (
        "import importlib, sys, pickle\n"
        "def _refuse(*a, **k): raise AssertionError('clean code unpickled something')\n"
        # a class, not a function: torch._dynamo (imported by torchvision) subclasses Unpickler
        "class _Refused(pickle.Unpickler):\n    __init__ = load = _refuse\n"
        "pickle.load = pickle.loads = _refuse; pickle.Unpickler = _Refused\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN_MODULES[:-4]!r})\n"
        "assert not bad, bad\n"
        "print('ok', len(sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]


def test_core_never_imports_an_optional_extra() -> None:
    """The runtime and parity work without scikit-learn: importing every module outside the
    evaluate package loads none of the extras, whether or not they are installed."""
    code = (
        "import importlib, sys\n"
        f"for m in {_modules(with_extras=False)!r}: importlib.import_module(m)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {tuple(EXTRAS)!r})\n"
        "assert not bad, bad\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]


def test_parity_runs_end_to_end_with_unpickling_disabled(tmp_path: Path) -> None:
    """At runtime too: `python -m orcaport.parity` on the fixture, with pickle.load/loads/Unpickler made to
    raise before anything is imported, still loads weights/references and passes."""
    code = (
        "import pickle, runpy, sys\n"
        "def _refuse(*a, **k): raise AssertionError('clean code unpickled something')\n"
        # a class, not a function: torch._dynamo (imported by torchvision) subclasses Unpickler
        "class _Refused(pickle.Unpickler):\n    __init__ = load = _refuse\n"
        "pickle.load = pickle.loads = _refuse; pickle.Unpickler = _Refused\n"
        f"sys.argv = ['parity', '--reports', {str(tmp_path)!r}, '--model', {str(FIXTURE)!r},\n"
        f"            '--references', {str(REFS)!r}, '--audio', {str(CORPUS)!r}]\n"
        "runpy.run_module('orcaport.parity', run_name='__main__', alter_sys=True)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert "PARITY PASSED" in out.stdout and (tmp_path / "parity.json").is_file()

