"""The package's shape: dependencies point one way (core <- records <- report <- app),
and the report needs neither Hydra nor the app."""

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "mlpsweep"
# Each package may import only packages of a lower layer (and itself).
LAYERS = {
    "core": 0,
    "provenance": 1,
    "records": 1,  # writes files atomically (records/files.py): for the data cache too
    "data": 2,
    "report": 2,
    "launcher": 2,  # a general Hydra launcher: knows nothing of training or records
    "app": 3,
    "bench": 4,
    "cli": 5,  # the `mlpsweep` command, `mlpsweep bench` included
}


def package_of(path):
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py") if rel.parts[0] != "__init__.py" else None


def imports(path):
    """The mlpsweep packages a module imports (at any depth: lazy imports count too)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "mlpsweep":
                names = [f"mlpsweep.{a.name}" for a in node.names]
        out |= {n.split(".")[1] for n in names if n.startswith("mlpsweep.")}
    return out


def test_packages_import_only_downwards():
    edges = {}
    for path in SRC.rglob("*.py"):
        pkg = package_of(path)
        if pkg is None:
            continue
        assert pkg in LAYERS, f"{pkg}: a new package needs a place in LAYERS"
        for target in imports(path) - {pkg}:
            edges.setdefault((pkg, target), []).append(path.relative_to(SRC))
    upward = {e: files for e, files in edges.items() if LAYERS[e[0]] <= LAYERS[e[1]]}
    assert not upward, f"imports against the layering: {upward}"


def test_the_report_imports_without_hydra_or_the_app():
    code = (
        "import sys, mlpsweep.report.build, mlpsweep.records\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('hydra', 'omegaconf')"
        " or m.startswith(('mlpsweep.app', 'mlpsweep.launcher')))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_planning_checks_a_study_without_loading_the_report():
    """A sweep's planner checks its study declaration before the first job; pandas,
    matplotlib and seaborn (~1.3 s) load in the background while the jobs run."""
    code = (
        "import sys; from omegaconf import OmegaConf; from mlpsweep.app.plan import check_study\n"
        "study = {'compare': ['batch_size'], 'metrics': ['spread_rel', 'test_accuracy']}\n"
        "assert check_study(OmegaConf.create({'study': study})) == study\n"
        "try:\n"
        "    check_study(OmegaConf.create({'study': {'metrics': ['speed']}}))\n"
        "except ValueError as e:\n"
        "    assert \"unknown metric 'speed'\" in str(e), e\n"
        "else:\n"
        "    raise AssertionError('an unknown metric passed')\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pandas', 'matplotlib', 'seaborn'))\n"
        "assert not heavy, heavy\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
