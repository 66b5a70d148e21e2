"""The `mlpsweep` command: reports on sweep directories (and `mlpsweep bench NAME`)."""

import argparse
import sys

from mlpsweep.records import SweepError, UnsafeFile


def has_runs(folder) -> bool:
    """Whether the sweep lists (or, adaptive, has recorded) any run; says so if not."""
    from mlpsweep.records import SweepManifest

    if SweepManifest.read(folder).runs:  # (SweepError: not a sweep, said by main)
        return True
    print(
        f"mlpsweep: {folder}: the sweep has no runs yet (none planned or recorded): nothing "
        "to show; run it, or rerun its command with resume=true",
        file=sys.stderr,
    )
    return False


def cmd_report(args):
    from pathlib import Path

    dirs = [Path(d) for d in args.dirs]
    if not all(has_runs(d) for d in dirs):
        return 2
    if len(dirs) == 1 and not (args.merge or args.keep_apart):
        if args.out:
            print("mlpsweep: --out is for --merge (a sweep's report goes in its folder)",
                  file=sys.stderr)  # fmt: skip
            return 2
        from mlpsweep.report import build_report

        print(f"report: {build_report(dirs[0])}")
        return 0
    if not (args.merge or args.keep_apart):
        print(
            f"mlpsweep: {len(dirs)} sweeps: add --merge for one report over their runs (or "
            "`mlpsweep compare` to set them side by side)",
            file=sys.stderr,
        )
        return 2
    from mlpsweep.report import merge_report

    out = Path(args.out) if args.out else comparison_folder(dirs, "merged", "+")
    problem = merge_out_problem(out, dirs)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    problem = make_folder(out)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    print(f"report: {merge_report(dirs, out, keep_apart=args.keep_apart)}")
    return 0


def cmd_export(args):
    from mlpsweep.app.tensorboard import INSTALL, export

    try:
        n = export(args.dir)
    except ImportError:
        print(
            f"mlpsweep: {INSTALL.replace('tensorboard=true', 'export tensorboard')}",
            file=sys.stderr,
        )
        return 2
    print(f"tensorboard: {n} runs written; tensorboard --logdir {args.dir}")
    return 0


def merge_out_problem(out, dirs):
    """The one line refusing an --out that would write into a sweep: one of the merged
    sweeps, a folder inside one (its runs/ or report/), or any other sweep's folder (its
    report.html and runs.parquet would be overwritten); None when `out` is safe."""
    target = out.resolve()
    for d in dirs:
        if target == d.resolve() or d.resolve() in target.parents:
            return (
                f"mlpsweep: --out {out}: is inside the merged sweep {d} (sweeps are never "
                "written): choose a folder outside it"
            )
    if (out / "sweep.json").exists():
        return (
            f"mlpsweep: --out {out}: is another sweep's folder (its report would be "
            "overwritten): choose a new folder"
        )
    return None


def make_folder(out):
    """None once `out` is a folder, else the one line saying why it cannot be."""
    if out.exists() and not out.is_dir():
        return f"mlpsweep: --out {out}: exists and is not a folder"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return f"mlpsweep: --out {out}: cannot make this folder ({e.strerror or e})"
    return None


def cmd_compare(args):
    from pathlib import Path

    from mlpsweep.records import SweepManifest
    from mlpsweep.report import compare

    dirs = [Path(d) for d in args.dirs]
    seen = {}
    for d in dirs:
        made = SweepManifest.read(d)  # (SweepError: not a sweep, said by main)
        for key in (identity(d), ("sweep", made.sweep_id)):
            # by inode, not name (a link, a bind mount, ../x), and by the id its manifest
            # was made with (a copy of a sweep is the same sweep: its runs count twice)
            if key in seen:
                print(
                    f"mlpsweep: {d} is given twice (as {seen[key]}, the same sweep): each "
                    "sweep once",
                    file=sys.stderr,
                )
                return 2
            seen[key] = d
    out = Path(args.out) if args.out else comparison_folder(dirs)
    if out.exists() and not out.is_dir():
        print(f"mlpsweep: --out {out}: exists and is not a folder", file=sys.stderr)
        return 2
    inside = next((d for d in dirs if within(out, d)), None)
    if inside is not None:
        print(
            f"mlpsweep: --out {out}: is (or is inside) the input {inside}; a comparison never "
            "writes into a sweep it reads: name another folder",
            file=sys.stderr,
        )
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


def identity(path):
    """(device, inode) of a folder, or its resolved path when it does not exist."""
    import os

    try:
        st = os.stat(path)
    except OSError:
        return str(path.resolve())
    return (st.st_dev, st.st_ino)


def within(out, folder):
    """Whether `out` is `folder` or a folder inside it (by identity, walking up)."""
    target = identity(folder)
    path = out.absolute()
    for candidate in (path, *path.parents):
        if candidate.exists() and identity(candidate) == target:
            return True
    return False


def comparison_folder(dirs, kind="comparisons", join="-vs-"):
    """results/<kind>/<name>-vs-<name>/ beside the sweeps' results folder (the first
    sweep's grandparent, results/<sweep>/<time>), named after the inputs."""
    import re

    names = [f"{d.resolve().parent.name}_{d.resolve().name}" for d in dirs]
    name = re.sub(r"[^A-Za-z0-9_.+-]+", "_", join.join(names))[:150]
    return dirs[0].resolve().parent.parent / kind / name


RUNS_COLUMNS = (  # what `mlpsweep runs` shows (means over seeds), when a run has it
    "final_train_loss",
    "test_accuracy",
    "spread_rel",
    "spread_trajectory_rel",
    "steps_to_target",
)


def cmd_runs(args):
    import pandas as pd

    from mlpsweep.report.analysis import analyse, summary
    from mlpsweep.report.collect import collect
    from mlpsweep.report.halving import paused_runs
    from mlpsweep.report.metrics import METRICS

    if not has_runs(args.dir):
        return 2
    analysis = analyse(collect(args.dir, write=False))
    table = summary(analysis)
    shown = table[["config", "runs", "status"]].copy()
    paused = paused_runs(analysis.runs)
    if paused.any():  # runs stopped at a halving rung: not comparable with those at the end
        at = analysis.runs[paused].groupby("config")["steps_done"].max()
        shown["paused at"] = table["config"].map(
            lambda c: f"{int(at[c])} steps" if c in at else "-"
        )
    for col in RUNS_COLUMNS:  # numbers only, and only the columns some run has
        if f"_{col}" in table and table[f"_{col}"].notna().any():
            shown[METRICS[col][0]] = table[f"_{col}"].map(lambda v: f"{v:.4g}" if v == v else "-")
    with pd.option_context("display.max_colwidth", 48):
        print(shown.to_string(index=False, line_width=100))
    return 0


def newest_sweep(folder):
    """The newest sweep folder (with a manifest) inside `folder`, or None."""
    from pathlib import Path

    from mlpsweep.records import MANIFEST

    found = sorted(Path(folder).glob(f"*/{MANIFEST}"), key=lambda p: p.stat().st_mtime)
    return found[-1].parent if found else None


def build_parser():
    parser = argparse.ArgumentParser(prog="mlpsweep", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("report", help="(re)build a sweep's report.html, or one over several")
    p.add_argument("dirs", nargs="+", metavar="dir", help="sweep folders, results/<sweep>/<time>")
    p.add_argument(
        "--merge",
        action="store_true",
        help="one report over the union of the sweeps' runs (a run in several counted once)",
    )
    p.add_argument(
        "--keep-apart",
        action="store_true",
        help="with several sweeps: one report, each run keeping its sweep (a `sweep` column)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="with --merge: the folder for its report.html, tables and figures (default: "
        "results/merged/<a>+<b>/, named after the inputs)",
    )
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
    p = sub.add_parser(
        "export",
        help="a finished sweep's TensorBoard event files, one per run (as tensorboard=true)",
    )
    p.add_argument("format", choices=["tensorboard"], help="what to write")
    p.add_argument("dir", help="a sweep directory, results/<sweep>/<time>")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("runs", help="print a sweep's summary table")
    p.add_argument("dir", help="a sweep directory, results/<sweep>/<time>")
    p.set_defaults(func=cmd_runs)
    from mlpsweep.bench import NAMES

    sub.add_parser(
        "bench", help=f"the benchmarks: mlpsweep bench NAME ({', '.join(NAMES)})", add_help=False
    )
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = None
    try:  # the benches too: a bad --data-dir is a line, not a traceback
        if argv[:1] == ["bench"]:
            from mlpsweep.bench import main as bench

            return bench(argv[1:])
        args = build_parser().parse_args(argv)
        return args.func(args)
    except BrokenPipeError:  # `mlpsweep runs DIR | head`: the reader has all it wanted
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except SweepError as e:  # not a sweep directory, or an unreadable manifest
        folder = getattr(args, "dir", None) or (getattr(args, "dirs", None) or ["."])[0]
        newest = newest_sweep(folder)
        hint = f"; it holds sweeps, the newest is {newest}" if newest else ""
        print(f"mlpsweep: {e}{hint}", file=sys.stderr)
        return 2
    except UnsafeFile as e:  # a link, a FIFO, a folder where a file should be: refused
        print(f"mlpsweep: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a read-only folder: said, not a traceback
        where = f"{e.filename}: " if e.filename else ""
        print(f"mlpsweep: cannot write or read {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mlpsweep: interrupted; nothing half-written is kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
