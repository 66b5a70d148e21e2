"""The benchmarks, behind one entry point: `mlpsweep bench NAME` or
`python -m mlpsweep.bench NAME`. Each prints ratios measured in one run (these machines
are shared and noisy), never a bare time to compare with another day's.

train     the training step against its matmul ceiling (train.py)
launch    the launcher's overhead per job, beside the stock joblib launcher (launch.py)
parallel  batch_oscillation's wall time against its CPU time (launch.py)
report    report build time for synthetic sweeps (report.py)
data      dataset load time and memory shared by workers (data.py)
kill      kill -9 a sweep at random moments and resume it, counting losses (kill.py)
noise     what noise_probe and trajectory_probe add to a run (probe_cost.py)
faults    every fault class (kills, SIGTERM, collisions, damage, names), counted (faults.py)
readme    the README's quoted study numbers and timings, with machine and BLAS (readme.py)
halving   successive halving against the full grid: picks, B_crit, steps (halving.py)
"""

import argparse
import sys

# The benchmarks, in the order the docstring lists them (`mlpsweep --help` names them too).
NAMES = tuple(line.split()[0] for line in __doc__.split("\n\n")[1].splitlines() if line.strip())


def at_least(low):
    """An argparse type: a whole number >= `low` (one line from argparse otherwise)."""

    def number(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is below {low}, the least that measures")
        return value

    return number


def parser(prog="mlpsweep bench"):
    from mlpsweep.data import DATASETS

    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="name", required=True)
    b = sub.add_parser("train", help="the training step against its matmul ceiling")
    b.add_argument("--rounds", type=at_least(1), default=7, help="interleaved rounds (best kept)")
    b.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    b.add_argument(
        "--also-kernels",
        nargs="*",
        default=["Haswell"],
        metavar="KERNEL",
        help="OpenBLAS kernels (OPENBLAS_CORETYPE) to run it under too, each in a process "
        "of its own, after the one this CPU picks (default: Haswell; none: no value)",
    )
    b = sub.add_parser("launch", help="launcher overhead per job vs the stock launcher")
    b.add_argument("--jobs", type=at_least(2), default=200, help="jobs of the large sweep")
    b.add_argument("--rounds", type=at_least(1), default=3, help="best of this many rounds")
    b.add_argument(
        "--skip-shortcuts",
        dest="shortcuts",
        action="store_false",
        help="skip timing the launcher with each shortcut turned off",
    )
    sub.add_parser("parallel", help="batch_oscillation's wall time vs its CPU time")
    b = sub.add_parser("report", help="report build time on synthetic sweeps")
    b.add_argument("--runs", type=at_least(1), nargs="+", default=[20, 200, 500])
    b.add_argument("--steps", type=at_least(10), default=1000, help="steps of each run")
    b = sub.add_parser("data", help="dataset load time and memory shared by workers")
    b.add_argument("--dataset", default="fashion_mnist", choices=sorted(DATASETS))
    b.add_argument("--data-dir", default=None)
    b = sub.add_parser("kill", help="kill -9 a sweep at random moments, resume, count")
    b.add_argument("--jobs", type=at_least(2), default=40)
    b.add_argument("--kills", type=at_least(1), default=10)
    b = sub.add_parser("noise", help="what the noise and trajectory probes cost a run")
    b.add_argument("--rounds", type=at_least(1), default=3)
    b = sub.add_parser("faults", help="each fault class at random moments, counted")
    b.add_argument("--repeats", type=at_least(1), default=3)
    b.add_argument("--jobs", type=at_least(4), default=12)
    b.add_argument("--only", nargs="+", help="the faults whose names contain these words")
    b = sub.add_parser("readme", help="the README's quoted study numbers, regenerated")
    b.add_argument("studies", nargs="*", help="default: all (batch_oscillation, lr_tune, ...)")
    b.add_argument("--from", dest="sources", nargs="+", default=[], help="finished sweeps")
    b = sub.add_parser("halving", help="successive halving vs the full grid: picks, compute")
    b.add_argument("--quick", action="store_true", help="smaller grids (a test's)")
    return p


def main(argv=None, prog="mlpsweep bench"):
    args = parser(prog).parse_args(argv)
    if args.name == "train":
        from mlpsweep.bench import train
        from mlpsweep.data import load_dataset

        rows = train.run(load_dataset("mnist_5k"), rounds=args.rounds)
        met = all(r["met"] for r in rows)
        for kernel in train.other_kernels(args.also_kernels):
            print()
            met &= train.under_kernel(kernel, args.rounds, args.strict)
        return 1 if args.strict and not met else 0
    if args.name == "launch":
        from mlpsweep.bench import launch

        launch.launch(args.jobs, args.rounds, shortcuts=args.shortcuts)
    elif args.name == "parallel":
        from mlpsweep.bench import launch

        launch.parallel()
    elif args.name == "report":
        from mlpsweep.bench import report

        report.run(sizes=args.runs, steps=args.steps)
    elif args.name == "data":
        from mlpsweep.bench import data
        from mlpsweep.data.fetch import data_folder

        try:  # the flag's own name in the one line, not the config key's
            if args.data_dir:
                data_folder(args.data_dir, f"--data-dir {args.data_dir}")
        except ValueError as e:
            print(f"mlpsweep: {e}", file=sys.stderr)
            return 1
        data.run(args.dataset, data_dir=args.data_dir)
    elif args.name == "kill":
        from mlpsweep.bench import kill

        return 1 if any(kill.run(jobs=args.jobs, kills=args.kills).values()) else 0
    elif args.name == "noise":
        from mlpsweep.bench import probe_cost
        from mlpsweep.data import load_dataset

        dataset = load_dataset("mnist_5k")
        probe_cost.run(dataset, rounds=args.rounds)
        probe_cost.trajectory(dataset, rounds=args.rounds)
    elif args.name == "faults":
        from mlpsweep.bench import faults

        only = None
        if args.only:
            words = [w.lower() for w in args.only]
            only = [n for n in faults.FAULTS if any(w in n.lower() for w in words)]
            if not only:
                raise SystemExit(f"mlpsweep bench faults: no fault named like {args.only}")
        totals = faults.run(repeats=args.repeats, jobs=args.jobs, only=only)
        return 1 if any(totals.values()) else 0
    elif args.name == "readme":
        from mlpsweep.bench import readme

        unknown = [s for s in args.studies if s not in readme.STUDIES]
        if unknown:
            raise SystemExit(f"mlpsweep bench readme: unknown study {unknown[0]!r} "
                             f"(known: {', '.join(readme.STUDIES)})")  # fmt: skip
        readme.run(args.studies, args.sources)
    elif args.name == "halving":
        from mlpsweep.bench import halving
        from mlpsweep.data import load_dataset

        return 0 if halving.run(load_dataset("mnist_5k"), quick=args.quick) else 1
    return 0
