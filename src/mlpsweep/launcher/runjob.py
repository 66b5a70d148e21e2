"""Hydra's `run_job` for one job of a launch, with its copies made cheaply.

Hydra's own run_job (hydra.core.utils.run_job) deep-copies the job's config four times
(two masked copies to set HydraConfig, the task config, the returned hydra config); on
a config with Hydra's node that is most of the cost of a short job. Here the job's
three configs (full, task, HydraConfig's) come from the composer's pickled bases
(compose.py), already separate: nothing is copied.
Everything else is what Hydra's run_job does, in its order: the output directory from
hydra.sweep.dir/subdir, hydra.runtime.output_dir, hydra.job.chdir, job logging, the
.hydra/ files (unless hydra.output_subdir is null), env_set, the callbacks, and a
JobReturn whose status is FAILED with the exception when the task raises. Hydra's
LauncherTestSuite and IntegrationTestSuite check it (tests/test_hydra_launcher_suites.py).

It earns 5.9 ms per job (5.1 strict) over Hydra's run_job, which
`hydra.launcher.no_shortcuts=[run_job]` takes instead (`mlpsweep bench launch`; the
figures of every shortcut are in shortcuts.py).
"""

import logging
import os
from pathlib import Path

from hydra.core.utils import JobReturn, JobRuntime, JobStatus, configure_log, env_override
from omegaconf import OmegaConf, open_dict, read_write

from mlpsweep.launcher.hydra_compat import chdir_default, save_config, set_hydra_config, set_parent


def run_job(
    hydra_context, task_function, configs, job_dir_key: str, job_subdir_key: str | None
) -> JobReturn:
    """`configs`: the job's (full, task, hydra-only) configs, independent objects."""
    config, task_cfg, hydra_cfg = configs
    callbacks = hydra_context.callbacks
    old_cwd = os.getcwd()
    OmegaConf.set_readonly(config.hydra, True)
    OmegaConf.set_readonly(hydra_cfg.hydra, True)
    set_parent(hydra_cfg.hydra, config)  # as set_config: the hydra node may refer to the task
    orig_hydra_cfg = set_hydra_config(hydra_cfg)  # what set_config makes, made once
    output_dir = str(OmegaConf.select(config, job_dir_key))
    if job_subdir_key is not None:
        output_dir = os.path.join(output_dir, str(OmegaConf.select(config, job_subdir_key)))
    for cfg in (config, hydra_cfg):
        with read_write(cfg.hydra.runtime), open_dict(cfg.hydra.runtime):
            cfg.hydra.runtime.output_dir = os.path.abspath(output_dir)
    chdir = False
    try:
        ret = JobReturn()
        ret.cfg, ret.hydra_cfg = task_cfg, hydra_cfg
        ret.overrides = OmegaConf.to_container(config.hydra.overrides.task)
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        chdir = hydra_cfg.hydra.job.chdir
        if chdir is None:  # unset: Hydra's default for the app's version_base
            chdir = chdir_default()
        if chdir:
            os.chdir(output_dir)
            ret.working_dir = output_dir
        else:
            ret.working_dir = os.getcwd()
        configure_log(config.hydra.job_logging, config.hydra.verbose)
        if config.hydra.output_subdir is not None:
            hydra_output = Path(config.hydra.runtime.output_dir) / str(config.hydra.output_subdir)
            save_config(task_cfg, "config.yaml", hydra_output)
            save_config(hydra_cfg, "hydra.yaml", hydra_output)
            save_config(config.hydra.overrides.task, "overrides.yaml", hydra_output)
        with env_override(hydra_cfg.hydra.job.env_set):
            callbacks.on_job_start(config=config, task_function=task_function)
            try:
                ret.return_value = task_function(task_cfg)
                ret.status = JobStatus.COMPLETED
            except Exception as e:  # noqa: BLE001 - the job's failure goes back in its JobReturn
                ret.return_value = e
                ret.status = JobStatus.FAILED
        ret.task_name = JobRuntime.instance().get("name")
        for handler in logging.getLogger().handlers:
            handler.flush()
        callbacks.on_job_end(config=config, job_return=ret)
        return ret
    finally:
        set_hydra_config(orig_hydra_cfg)
        # As in Hydra's copy: the returned hydra config stands alone (else pickling it
        # back to the launcher would drag the whole job config along).
        set_parent(hydra_cfg.hydra, hydra_cfg)
        if chdir:
            os.chdir(old_cwd)
