"""Dataset benchmark: warm-cache load time, and the memory of workers sharing a dataset.

Memory is the peak PSS (proportional set size: a page shared by k processes counts 1/k
in each) summed over the workers, sampled from /proc every 20 ms while they train.
"""

import subprocess
import sys
import time
from pathlib import Path

# One BLAS thread per worker, as the sweep launcher runs them.
WORKER = (
    "import sys; from threadpoolctl import threadpool_limits; threadpool_limits(1); "
    "from mlpsweep.data import load_dataset; from mlpsweep.core import train, "
    "TrainConfig; d = load_dataset(sys.argv[1], data_dir=sys.argv[2] or None); "
    "train(TrainConfig(steps=int(sys.argv[3]), eval_every=int(sys.argv[3]) // 2), d)"
)


def pss_kib(pid):
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def peak_pss(n_workers, name, data_dir, steps):
    """Peak of the workers' summed PSS (MiB) while `n_workers` train at once."""
    cmd = [sys.executable, "-c", WORKER, name, str(data_dir or ""), str(steps)]
    procs = [subprocess.Popen(cmd) for _ in range(n_workers)]
    peak = 0
    while any(p.poll() is None for p in procs):
        peak = max(peak, sum(pss_kib(p.pid) for p in procs))
        time.sleep(0.02)
    if any(p.returncode for p in procs):
        raise RuntimeError(f"a worker failed (exit codes {[p.returncode for p in procs]})")
    return peak / 1024


def run(name="fashion_mnist", data_dir=None, steps=400, out=print):
    from mlpsweep.data import load_dataset

    load_dataset(name, data_dir=data_dir)  # build the cache if needed, warm the page cache
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        d = load_dataset(name, data_dir=data_dir)
        times.append(time.perf_counter() - t0)
    out(
        f"{name}: {d.train_size:,} train + {len(d.y_test):,} test images, "
        f"{(d.x_train.nbytes + d.x_test.nbytes) / 2**20:.1f} MiB as uint8"
    )
    out(f"load from the warm cache: {min(times) * 1000:.1f} ms (best of 5; target < 200 ms)")
    one = peak_pss(1, name, data_dir, steps)
    two = peak_pss(2, name, data_dir, steps)
    verdict = "met" if two <= 1.3 * one else "MISSED"
    out(f"peak PSS, one worker training alone: {one:.0f} MiB")
    out(
        f"peak PSS, two workers at once (sum):  {two:.0f} MiB = {two / one:.2f}x one "
        f"(target <= 1.3x: {verdict})"
    )
    return {"load_s": min(times), "one_mib": one, "two_mib": two}
