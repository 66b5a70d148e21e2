"""Hydra's private API is used in one module (mlpsweep/launcher/hydra_compat.py), and
only with a Hydra version it was checked with."""

import re
from pathlib import Path

import hydra

from mlpsweep.launcher import hydra_compat

SRC = Path(__file__).resolve().parent.parent / "src"
PRIVATE = re.compile(r"hydra\._internal|\._return_value\b|\._set_parent\(|\b_save_config\b")


def test_the_installed_hydra_is_one_the_private_uses_were_checked_with():
    assert hydra_compat.unchecked_hydra() is None, (
        f"{hydra_compat.unchecked_hydra()}\nAfter checking (see hydra_compat's docstring), "
        "add the version to CHECKED_HYDRA."
    )


def test_the_basic_sweepers_name_is_the_class_it_names():
    cls = hydra_compat.basic_sweeper()
    assert f"{cls.__module__}.{cls.__qualname__}" == hydra_compat.BASIC_SWEEPER_TARGET


def test_an_unchecked_hydra_is_named_with_the_version_to_install(monkeypatch):
    monkeypatch.setattr(hydra, "__version__", "1.4.0")
    line = hydra_compat.unchecked_hydra()
    assert line.startswith("Hydra 1.4.0 is installed") and "hydra-core==1.3.*" in line
    assert "\n" not in line


def test_no_module_but_hydra_compat_uses_a_private_part_of_hydra():
    users = [
        f"{path.relative_to(SRC)}:{n}"
        for path in SRC.rglob("*.py")
        if path.name != "hydra_compat.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if PRIVATE.search(line.split("#")[0])
    ]
    assert not users, f"private Hydra APIs outside launcher/hydra_compat.py: {users}"
