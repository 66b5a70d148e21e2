"""The fast composition must give exactly the configs Hydra composes."""

import pytest
from helpers import REPO, own_hydra_state
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode
from omegaconf import OmegaConf

from mlpsweep.app.schema import register
from mlpsweep.app.spec import train_config
from mlpsweep.launcher.compose import JobComposer, task_container
from mlpsweep.launcher.hydra_compat import VERSION_BASE

JOBS = [
    [],
    ["batch_size=10", "lr=0.5"],
    ["optimizer=adam", "lr=0.001", "optimizer.beta1=0.8"],
    ["lr=0.3", "optimizer=momentum", "seed=4"],
    ["+sweep=batch_oscillation", "grad_reduction=mean", "batch_size=100", "lr=1.0", "seed=2"],
    ["+sweep=optimizers", "optimizer=rmsprop", "lr=0.01", "steps=5"],
    ["hidden_sizes=[30,20]", "init=xavier", "activation=tanh"],
    ["init=0.01", "dataset=fashion_mnist", "dataset.data_dir=/tmp/x"],
    ["dtype=float64", "rng=legacy", "loss_eps=1e-7", "hidden_sizes=null"],
    ["seed=3", "hydra.job.chdir=true", "steps=7"],
]


@pytest.fixture(scope="module")
def hydra_loader():
    with own_hydra_state():
        register()
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(REPO / "conf"), **VERSION_BASE):
            loader = GlobalHydra.instance().config_loader()
            master = loader.load_configuration("config", overrides=[], run_mode=RunMode.MULTIRUN)
            yield loader, master


def plain(cfg):
    return OmegaConf.to_container(cfg, resolve=False)


@pytest.mark.parametrize("overrides", JOBS, ids=lambda o: " ".join(o) or "defaults")
def test_fast_composition_equals_hydra(hydra_loader, overrides):
    loader, master = hydra_loader
    named = [o for o in overrides if o.startswith("+sweep=")]
    if named:  # a named sweep sets hydra.sweeper: on the command line, in the master too
        # (Hydra 1.4 refuses a job whose overrides change hydra.sweeper)
        master = loader.load_configuration("config", overrides=named, run_mode=RunMode.MULTIRUN)
    composer = JobComposer(loader, master)
    for _ in range(2):  # the second time from the cached base
        slow = loader.load_sweep_config(master, list(overrides))
        full, task, hydra = composer.job(overrides)
        assert plain(full) == plain(slow)
        assert plain(task) == {k: v for k, v in plain(slow).items() if k != "hydra"}
        assert plain(hydra) == {"hydra": plain(slow)["hydra"]}
        assert plain(composer.task(overrides)) == plain(task)
        assert task_container(task) == task_container(OmegaConf.masked_copy(slow, list(task)))


def test_the_three_configs_are_independent(hydra_loader):
    composer = JobComposer(*hydra_loader)
    full, task, hydra = composer.job(["lr=0.5"], idx=7)
    assert full.hydra.job.num == hydra.hydra.job.num == 7
    task.lr = 0.25
    assert full.lr == 0.5 and composer.job(["lr=0.5"])[1].lr == 0.5


def test_composes_once_per_group_choice(hydra_loader):
    composer = JobComposer(*hydra_loader)
    for seed in range(5):
        for opt in ("sgd", "adam"):
            composer.job([f"optimizer={opt}", f"seed={seed}", "lr=0.1"])
    assert len(composer.bases) == 2


def test_train_config_from_composed(hydra_loader):
    composer = JobComposer(*hydra_loader)
    task = composer.task(["optimizer=adam", "hidden_sizes=[30,20]"])
    tc = train_config(task_container(task))
    assert tc.optimizer == "adam" and tc.optimizer_params == {
        "beta1": 0.9,
        "beta2": 0.999,
        "eps": 1e-8,
    }
    assert tc.hidden == (30, 20) and tc.activation == "relu"
