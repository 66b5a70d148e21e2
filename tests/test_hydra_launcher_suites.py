"""Hydra's own launcher conformance suites, run against hydra/launcher=mlpsweep: the
launcher must run any task function the way Hydra specifies, not only ours."""

import pytest
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.test_utils.launcher_common_tests import IntegrationTestSuite, LauncherTestSuite

from hydra_plugins.mlpsweep_plugins.launcher import MlpsweepLauncher

# Hydra 1.4 imports plugin modules once (1.3 executed them again at each scan), and the
# suites restore Hydra's state after each test: discover the plugins before the first
# snapshot, or the config store loses the entries (hydra/sweeper/basic) they registered.
Plugins.instance().discover(Launcher)


def test_the_launcher_is_discovered_as_a_hydra_plugin():
    assert MlpsweepLauncher.__name__ in [x.__name__ for x in Plugins.instance().discover(Launcher)]


# Also with every shortcut off: Hydra's own public path (launcher/shortcuts.py).
PUBLIC_PATH = ["hydra.launcher.no_shortcuts=[all]"]


# Quick: the jobs in this process (no workers to start); slow: in worker processes, with
# every shortcut and with none.
@pytest.mark.parametrize(
    "launcher_name, overrides",
    [
        ("mlpsweep", ["hydra.launcher.n_jobs=1"]),
        pytest.param("mlpsweep", [], marks=pytest.mark.slow),
        pytest.param("mlpsweep", PUBLIC_PATH, marks=pytest.mark.slow),
    ],
)
class TestMlpsweepLauncher(LauncherTestSuite):
    pass


@pytest.mark.slow
@pytest.mark.parametrize(
    "task_launcher_cfg, extra_flags",
    [({"defaults": [{"override hydra/launcher": "mlpsweep"}]}, ["-m"])],
)
class TestMlpsweepLauncherIntegration(IntegrationTestSuite):
    pass
