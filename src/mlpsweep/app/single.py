"""One run without -m: the same job, in this process, into Hydra's run directory."""

from pathlib import Path

from hydra.core.hydra_config import HydraConfig

from mlpsweep.app import storage
from mlpsweep.app.compose import task_container
from mlpsweep.app.jobs import execute
from mlpsweep.app.sweep import describe, fail, job_spec, metrics_record
from mlpsweep.core.config import ConfigError
from mlpsweep.data.idx import DatasetError


def run_single(cfg):
    container = task_container(cfg)
    try:
        spec = job_spec(container, {}, blas_threads=None)
    except (ConfigError, DatasetError) as e:
        fail(str(e))
    spec["overrides"] = list(HydraConfig.get().overrides.task)
    spec["retries"] = int(container.get("retries", 0))
    if container.get("dry_run"):
        print(
            f"dry run: would train {spec['run_id']} "
            f"({' '.join(spec['overrides']) or 'defaults'}); nothing is trained or written"
        )
        return "dry_run"
    result = execute(spec)
    out = Path(HydraConfig.get().runtime.output_dir)
    storage.write_run(out, result, metrics_record(spec, result))
    print(f"{describe(spec, result)}\nresults: {out}")
    if result["status"] == "failed":
        raise SystemExit(1)
    return result["status"]
