"""Will the runs fit in memory? Checked before any job starts (one line if not), because
a worker that runs out of memory is killed by the kernel mid-run, taking time with it."""

import os

from mlpsweep.core.checks import ConfigError
from mlpsweep.core.memory import format_size, parse_size, run_bytes


def available_bytes():
    """Memory available to new processes now (Linux: MemAvailable), else total RAM."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def concurrent_runs(hydra_config, n_jobs):
    """How many of `n_jobs` jobs run at once on this machine under the sweep's launcher
    (n_jobs of joblib-like launchers; one for the rest: basic, or one per machine)."""
    workers = hydra_config.launcher.get("n_jobs", 1) if "launcher" in hydra_config else 1
    if not isinstance(workers, int) or workers <= 0:
        workers = os.cpu_count() or 1
    return max(1, min(workers, n_jobs))


def budget(max_memory):
    if str(max_memory).strip().lower() == "auto":
        return available_bytes(), "available"
    try:
        return parse_size(max_memory), "allowed by max_memory"
    except ValueError as e:
        raise ConfigError(f"max_memory={max_memory!r}: {e}") from None


def check_memory(specs, concurrent, max_memory):
    """ConfigError when the `concurrent` largest runs of `specs` need more memory than
    the budget (`max_memory`: 'auto' or a size such as 16G)."""
    limit, what = budget(max_memory)
    need = sorted(
        ((run_bytes(s.train, s.input_size, s.num_classes), s) for s in specs),
        key=lambda pair: pair[0],
        reverse=True,
    )[:concurrent]
    total = sum(n for n, _ in need)
    if total <= limit:
        return
    biggest, spec = need[0]
    t = spec.train
    at_once = f"; {len(need)} runs at once need {format_size(total)}" if len(need) > 1 else ""
    raise ConfigError(
        f"not enough memory: a run with width={t.width} depth={t.depth} "
        f"batch_size={t.batch_size} ({spec.describe()}) needs about {format_size(biggest)}"
        f"{at_once}, more than the {format_size(limit)} {what}. Make the network or batch "
        "smaller"
        + (", or lower hydra.launcher.n_jobs" if len(need) > 1 else "")
        + ", or set max_memory=SIZE (e.g. 64G) to run anyway"
    )
