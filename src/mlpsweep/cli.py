"""The `mlpsweep` command: reports on sweep directories (and `mlpsweep bench NAME`)."""

import argparse
import sys

from mlpsweep.records import SweepError


def cmd_report(args):
    from mlpsweep.report import build_report

    print(f"report: {build_report(args.dir)}")
    return 0


def cmd_compare(args):
    from pathlib import Path

    from mlpsweep.report import compare

    dirs = [Path(d) for d in args.dirs]
    seen = {}
    for d in dirs:
        key = d.resolve()
        if key in seen:
            print(
                f"mlpsweep: {d} is given twice (as {seen[key]}): each sweep once", file=sys.stderr
            )
            return 2
        seen[key] = d
    out = Path(args.out) if args.out else comparison_folder(dirs)
    if out.exists() and not out.is_dir():
        print(f"mlpsweep: --out {out}: exists and is not a folder", file=sys.stderr)
        return 2
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(
            f"mlpsweep: --out {out}: cannot make this folder ({e.strerror or e})", file=sys.stderr
        )
        return 2
    print(f"report: {compare(dirs, out / 'comparison.html')}")
    return 0


def comparison_folder(dirs):
    """results/comparisons/<name>-vs-<name>/ beside the sweeps' results folder (the first
    sweep's grandparent, results/<sweep>/<time>), named after the inputs."""
    import re

    names = [f"{d.resolve().parent.name}_{d.resolve().name}" for d in dirs]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", "-vs-".join(names))[:150]
    return dirs[0].resolve().parent.parent / "comparisons" / name


def cmd_runs(args):
    import pandas as pd

    from mlpsweep.report.analysis import analyse, summary
    from mlpsweep.report.collect import collect

    runs, history, _ = collect(args.dir, write=False)
    table = summary(analyse(runs, history))
    cols = [c for c in table.columns if not c.startswith("_")]
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        print(table[cols].to_string(index=False))
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="mlpsweep", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("report", help="(re)build a sweep's report.html")
    p.add_argument("dir", help="a sweep directory, results/<sweep>/<time>")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("compare", help="several sweeps side by side in one report")
    p.add_argument("dirs", nargs="+", help="sweep directories, results/<sweep>/<time>")
    p.add_argument(
        "--out",
        default=None,
        help="the folder for comparison.html, its figures and tables (default: "
        "results/comparisons/<a>-vs-<b>/, named after the inputs)",
    )
    p.set_defaults(func=cmd_compare)
    p = sub.add_parser("runs", help="print a sweep's summary table")
    p.add_argument("dir", help="a sweep directory, results/<sweep>/<time>")
    p.set_defaults(func=cmd_runs)
    sub.add_parser(
        "bench",
        help="the benchmarks: mlpsweep bench {train,launch,parallel,report,data,kill}",
        add_help=False,
    )
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:
        from mlpsweep.bench import main as bench

        return bench(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SweepError as e:  # not a sweep directory, or an unreadable manifest
        print(f"mlpsweep: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
