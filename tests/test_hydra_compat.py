"""Hydra's private API is used in one module (mlpsweep/launcher/hydra_compat.py), and
only with a Hydra version it was checked with.

"Private" is read from Hydra's and OmegaConf's own code, not from a list of the uses we
happen to have: `hydra._internal` (imported, or named in a dotted string), any
underscore name imported from them, any underscore attribute their classes define (read,
written, called, or through getattr/setattr), and any write to Hydra's singletons.
"""

import ast
import functools
import importlib
from pathlib import Path

import hydra
import pytest

from mlpsweep.launcher import hydra_compat

SRC = Path(__file__).resolve().parent.parent / "src"
RUN_PY = SRC.parent / "run.py"
LIBRARIES = ("hydra", "omegaconf")
PACKAGES = (*LIBRARIES, "hydra_plugins")  # whose private modules count: Hydra's plugins' too
# Calls on a Hydra singleton that change it (ConfigStore.instance().store is Hydra's
# documented way to register configs, and reading one is harmless).
SINGLETON_WRITES = {"set_config", "set_state", "set", "setbase", "clear", "initialize"}
ATTR_CALLS = {"getattr", "setattr", "hasattr", "delattr"}


def defined_private_names(root):
    """Underscore (not dunder) names the code under `root` defines on its objects: methods,
    class attributes and `self._x` attributes."""
    names = set()
    for path in Path(root).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        names.add(item.name)
                    elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                        names.add(item.target.id)
                    elif isinstance(item, ast.Assign):
                        names |= {t.id for t in item.targets if isinstance(t, ast.Name)}
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                if isinstance(node.value, ast.Name) and node.value.id == "self":
                    names.add(node.attr)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


@functools.cache
def hydra_private_names():
    """Hydra's and OmegaConf's private attribute names that mlpsweep does not define
    itself (our own `self._context` is ours to use)."""
    theirs = set()
    for name in LIBRARIES:
        theirs |= defined_private_names(Path(importlib.import_module(name).__file__).parent)
    return frozenset(theirs - defined_private_names(SRC))


def is_library(module):
    return module.split(".")[0] in PACKAGES


def is_private_module(dotted):
    """hydra._internal..., omegaconf._utils...: a library's module private by its name."""
    parts = dotted.split(".")
    return is_library(dotted) and any(p.startswith("_") and not p.startswith("__") for p in parts)


def calls_instance(node):
    """Whether `node` contains a call of some `X.instance()` (a Hydra singleton)."""
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "instance"
        for n in ast.walk(node)
    )


def private_uses(source):
    """(line, what) for each private use of Hydra in `source`."""
    tree = ast.parse(source)
    private = hydra_private_names()
    found = []
    singletons = set()  # names bound to a singleton: h = HydraConfig.instance()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and calls_instance(node.value):
            singletons |= {t.id for t in node.targets if isinstance(t, ast.Name)}

    def on_singleton(node):
        return calls_instance(node) or any(
            isinstance(n, ast.Name) and n.id in singletons for n in ast.walk(node)
        )

    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            found += [(line, a.name) for a in node.names if is_private_module(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.module and is_library(node.module):
            if is_private_module(node.module):
                found.append((line, node.module))
            found += [(line, a.name) for a in node.names if a.name.startswith("_")]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if any(is_private_module(word) for word in node.value.split()):
                found.append((line, node.value))
        elif isinstance(node, ast.Attribute):
            if node.attr in private:
                found.append((line, node.attr))
            if isinstance(node.ctx, (ast.Store, ast.Del)) and on_singleton(node.value):
                found.append((line, f"write to a singleton's {node.attr}"))
            if (
                node.attr == "GlobalHydra"
                or node.attr in SINGLETON_WRITES
                and (
                    on_singleton(node.value)
                    or isinstance(node.value, ast.Name)
                    and node.value.id == "Singleton"
                )
            ):
                found.append((line, node.attr))
        elif isinstance(node, ast.Name) and node.id == "GlobalHydra":
            found.append((line, "GlobalHydra"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in ATTR_CALLS and len(node.args) >= 2:
                target, name = node.args[0], node.args[1]
                if isinstance(name, ast.Constant) and name.value in private:
                    found.append((line, f"{node.func.id}({name.value!r})"))
                elif node.func.id in ("setattr", "delattr") and on_singleton(target):
                    found.append((line, f"{node.func.id} on a singleton"))
    return sorted(set(found))


# Each form the check must catch, outside hydra_compat.py.
HOSTILE = {
    "import": "import hydra._internal.utils",
    "import as": "import hydra._internal.core_plugins.basic_sweeper as b",
    "from import": "from hydra._internal.utils import _locate",
    "from hydra import _internal": "from hydra import _internal",
    "private name from a public module": "from hydra.core.utils import _save_config",
    "private name from omegaconf": "from omegaconf._utils import get_value_kind",
    "dotted string": "get_method('hydra._internal.core_plugins.basic_sweeper.BasicSweeper')",
    "sweeper's _parse_config": "params = self._parse_config()",
    "JobReturn._return_value": "value = ret._return_value",
    "node._set_parent": "cfg.hydra._set_parent(cfg)",
    "omegaconf's _get_node": "node = cfg._get_node('x')",
    "getattr": "value = getattr(ret, '_return_value')",
    "setattr private": "setattr(ret, '_return_value', 1)",
    "HydraConfig.cfg assigned": "HydraConfig.instance().cfg = cfg",
    "assigned through a name": "h = HydraConfig.instance()\nh.cfg = cfg",
    "setattr on a singleton": "setattr(HydraConfig.instance(), 'cfg', cfg)",
    "augmented": "JobRuntime.instance().conf += 1",
    "set_config": "HydraConfig.instance().set_config(cfg)",
    "Singleton.set_state": "Singleton.set_state(state)",
    "GlobalHydra config_loader": "loader = GlobalHydra.instance().config_loader()",
    "GlobalHydra through the module": "hydra.core.global_hydra.GlobalHydra.instance().clear()",
    "JobRuntime set": "JobRuntime.instance().set('name', 'x')",
    "a Hydra plugin's private module": (
        "from hydra_plugins.hydra_optuna_sweeper._impl import create_optuna_distribution"
    ),
}
CLEAN = [
    "ConfigStore.instance().store(name='schema', node=Config)",
    "name = JobRuntime.instance().get('name')",
    "choices = HydraConfig.get().runtime.choices",
    "self._warm_up = None",  # an attribute of ours (no Hydra object has it)
    "from hydra.core.utils import JobReturn, run_job",
    "x = 'hydra.core.utils.run_job'",
]


@pytest.mark.parametrize("form", HOSTILE)
def test_the_check_catches_each_form_of_private_use(form):
    assert private_uses(HOSTILE[form]), form


@pytest.mark.parametrize("source", CLEAN)
def test_the_check_passes_public_uses(source):
    assert not private_uses(source)


def test_hydras_private_names_are_read_from_its_code():
    names = hydra_private_names()
    assert {"_parse_config", "_return_value", "_set_parent"} <= names
    assert "_warm_up" not in names  # not Hydra's: ours would not be flagged


def test_no_module_but_hydra_compat_uses_a_private_part_of_hydra():
    paths = [p for p in SRC.rglob("*.py") if p.name != "hydra_compat.py"] + [RUN_PY]
    users = [
        f"{path.relative_to(SRC.parent)}:{line}: {what}"
        for path in paths
        for line, what in private_uses(path.read_text(encoding="utf-8"))
    ]
    assert not users, f"private Hydra uses outside launcher/hydra_compat.py: {users}"


def test_hydra_compat_holds_the_uses_it_lists():
    """The compat module is where they are: the check finds them there."""
    found = {what for _, what in private_uses(Path(hydra_compat.__file__).read_text())}
    assert {"_parse_config", "_return_value", "_set_parent", "_save_config"} <= found
    assert "write to a singleton's cfg" in found and "GlobalHydra" in found


def test_the_installed_hydra_is_one_the_private_uses_were_checked_with():
    assert hydra_compat.unchecked_hydra() is None, (
        f"{hydra_compat.unchecked_hydra()}\nAfter checking (see hydra_compat's docstring), "
        "add the version to CHECKED_HYDRA."
    )


def test_the_basic_sweepers_name_is_the_class_it_names():
    cls = hydra_compat.basic_sweeper()
    assert f"{cls.__module__}.{cls.__qualname__}" == hydra_compat.BASIC_SWEEPER_TARGET


def test_an_unchecked_hydra_is_named_with_the_version_to_install(monkeypatch):
    monkeypatch.setattr(hydra, "__version__", "1.5.0")
    line = hydra_compat.unchecked_hydra()
    assert line.startswith("Hydra 1.5.0 is installed") and "hydra-core==1.3.*" in line
    assert "\n" not in line
