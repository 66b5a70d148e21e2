"""The `mlpsweep` command: reports on sweep directories, and the benchmarks."""

import argparse
import sys


def cmd_bench(args):
    from mlpsweep import bench
    from mlpsweep.data import load_dataset

    rows = bench.run(load_dataset("mnist_5k"), rounds=args.rounds)
    return 0 if all(r["met"] for r in rows) or not args.strict else 1


def cmd_bench_data(args):
    from mlpsweep import benchdata

    benchdata.run(args.dataset, data_dir=args.data_dir)
    return 0


def cmd_report(args):
    from mlpsweep.report import build_report

    print(f"report: {build_report(_sweep_dir(args.dir))}")
    return 0


def cmd_compare(args):
    from mlpsweep.report import compare

    print(f"report: {compare([_sweep_dir(d) for d in args.dirs], args.out)}")
    return 0


def cmd_runs(args):
    import pandas as pd

    from mlpsweep.report.analysis import analyse, summary
    from mlpsweep.report.collect import collect

    runs, history, _ = collect(_sweep_dir(args.dir), write=False)
    table = summary(analyse(runs, history))
    cols = [c for c in table.columns if not c.startswith("_")]
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        print(table[cols].to_string(index=False))
    return 0


def cmd_bench_report(args):
    from mlpsweep import benchreport

    benchreport.run(sizes=args.runs, steps=args.steps)
    return 0


def cmd_bench_launch(args):
    from mlpsweep import benchlaunch

    benchlaunch.launch(args.jobs)
    return 0


def cmd_bench_parallel(args):
    from mlpsweep import benchlaunch

    benchlaunch.parallel()
    return 0


def cmd_bench_kill(args):
    from mlpsweep import benchkill

    r = benchkill.run(jobs=args.jobs, kills=args.kills)
    return 0 if not any(r.values()) else 1


def _sweep_dir(path):
    """A sweep directory (holding sweep.json), with a one-line error otherwise."""
    from pathlib import Path

    from mlpsweep.app.sweep import SWEEP_FILE, fail

    path = Path(path)
    if not (path / SWEEP_FILE).is_file():
        fail(f"{path}: not a sweep directory (no {SWEEP_FILE}); sweeps are under results/")
    return path


def build_parser():
    parser = argparse.ArgumentParser(prog="mlpsweep", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("bench", help="time the training step against its ceiling")
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds (best is kept)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.set_defaults(func=cmd_bench)
    p = sub.add_parser("bench-data", help="dataset load time and memory shared by workers")
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--data-dir", default=None)
    p.set_defaults(func=cmd_bench_data)
    p = sub.add_parser("bench-report", help="time report building on synthetic sweeps")
    p.add_argument("--runs", type=int, nargs="+", default=[20, 200])
    p.add_argument("--steps", type=int, default=1000)
    p.set_defaults(func=cmd_bench_report)
    p = sub.add_parser("bench-launch", help="launcher overhead per job vs the stock launcher")
    p.add_argument("--jobs", type=int, default=200)
    p.set_defaults(func=cmd_bench_launch)
    p = sub.add_parser("bench-parallel", help="batch_oscillation's wall time vs its CPU time")
    p.set_defaults(func=cmd_bench_parallel)
    p = sub.add_parser("bench-kill", help="kill -9 a sweep at random moments, resume, count")
    p.add_argument("--jobs", type=int, default=40)
    p.add_argument("--kills", type=int, default=10)
    p.set_defaults(func=cmd_bench_kill)
    p = sub.add_parser("report", help="(re)build a sweep's report.html")
    p.add_argument("dir", help="a sweep directory, results/<sweep>/<time>")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("compare", help="several sweeps side by side in one report")
    p.add_argument("dirs", nargs="+")
    p.add_argument("--out", default="comparison.html")
    p.set_defaults(func=cmd_compare)
    p = sub.add_parser("runs", help="print a sweep's summary table")
    p.add_argument("dir")
    p.set_defaults(func=cmd_runs)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
