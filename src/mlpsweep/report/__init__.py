"""Reports: a sweep directory -> runs.parquet, history.parquet and one self-contained
report.html (figures embedded) that answers the sweep's question.

    build_report(sweep_dir)            one sweep (build.py)
    compare(sweep_dirs, out_path)      several sweeps side by side
    merge_report(sweep_dirs, out_dir)  one report over several sweeps' runs (merge.py)

Importing the package is light: its submodules load pandas, matplotlib and seaborn
(seconds of imports) when a report is built, not when a sweep's planner only checks a study
declaration (study.py) before its first job.
"""

_BUILD = ("build_report", "compare", "merge_report", "render")


def __getattr__(name):
    if name in _BUILD:
        from mlpsweep.report import build

        return getattr(build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return [*globals(), *_BUILD]
