"""The package's shape: dependencies point one way (core <- records <- report <- app),
and the report needs neither Hydra nor the app."""

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
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
    # Hydra's plugins (hydra/launcher=mlpsweep, hydra/sweeper=mlpsweep): Hydra imports
    # them; they wire the launcher and the app's planner (a dotted path) into Hydra.
    "hydra_plugins": 4,
    "cli": 5,  # the `mlpsweep` command, `mlpsweep bench` included
}
OURS = ("mlpsweep", "hydra_plugins.mlpsweep_plugins")
# Strings naming a package's data files, or a program run with `python -m`, are not imports.
NOT_IMPORTS = {"files", "-m"}


def package_of(path):
    """The layer a module belongs to: mlpsweep's top-level package, or hydra_plugins."""
    rel = path.relative_to(SRC)
    if rel.parts[0] == "hydra_plugins":
        return "hydra_plugins"
    parts = rel.parts[1:]
    return parts[0].removesuffix(".py") if parts[0] != "__init__.py" else None


def layer_of(dotted):
    """The package of LAYERS a dotted name of ours is in (None if not ours)."""
    if dotted.startswith("hydra_plugins.mlpsweep_plugins"):
        return "hydra_plugins"
    if dotted.startswith("mlpsweep.") and not dotted.startswith("mlpsweep._"):
        return dotted.split(".")[1]
    return None


def imports(source):
    """The packages of LAYERS a module's source imports, at any depth (lazy imports
    count), and through dotted strings (Hydra's `_target_`, get_method paths, importlib):
    any string that is a dotted name of ours, but a data package or a `python -m` program."""
    tree = ast.parse(source)
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in NOT_IMPORTS:
                skip |= {id(a) for a in node.args}
        elif isinstance(node, ast.List):
            items = node.elts
            skip |= {
                id(b)
                for a, b in zip(items, items[1:])
                if isinstance(a, ast.Constant) and a.value in NOT_IMPORTS
            }
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            if node.module in ("mlpsweep", "hydra_plugins"):
                names += [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            dotted = text.replace(".", "").replace("_", "").isalnum()
            if text.startswith(OURS) and dotted and id(node) not in skip:
                names.append(text)
    return {layer for layer in map(layer_of, names) if layer is not None}


def edges():
    """{(importer, imported): [files]} between the packages of LAYERS."""
    out = {}
    for path in SRC.rglob("*.py"):
        pkg = package_of(path)
        if pkg is None:
            continue
        assert pkg in LAYERS, f"{pkg}: a new package needs a place in LAYERS"
        for target in imports(path.read_text()) - {pkg}:
            out.setdefault((pkg, target), []).append(str(path.relative_to(SRC)))
    return out


def test_packages_import_only_downwards():
    upward = {e: files for e, files in edges().items() if LAYERS[e[0]] <= LAYERS[e[1]]}
    assert not upward, f"imports against the layering: {upward}"


def test_string_imports_and_the_plugins_are_seen():
    """The check sees a dotted string (the sweeper's planner default) and the plugins."""
    found = edges()
    assert ("hydra_plugins", "app") in found  # "mlpsweep.app.plan.plan_sweep"
    assert ("hydra_plugins", "launcher") in found
    source = (
        'planner = "mlpsweep.app.plan.plan_sweep"\n'
        "import hydra_plugins.mlpsweep_plugins.sweeper\n"
        'subprocess.run([sys.executable, "-m", "mlpsweep.cli"])\n'
        'resources.files("mlpsweep.report")\n'
    )
    assert imports(source) == {"app", "hydra_plugins"}


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
