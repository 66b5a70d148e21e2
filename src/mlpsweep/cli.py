"""The `mlpsweep` command: benchmarks and (later) reports on sweep directories."""

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
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
