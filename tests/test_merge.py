"""One dataset across sweeps (report/merge.py): a sweep extended by a second one, loaded
or reported as one, gives what one sweep with all their runs gives; runs in both are
counted once; sweeps on other data or from another harness version are refused; the
source sweeps are never written."""

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import multirun, page_text

import mlpsweep
from mlpsweep import records
from mlpsweep.report.merge import MergeRefused

GRID = ("lr=0.05,0.3", "width=16,32", "depth=1", "steps=40", "eval_every=20", "report=false")


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """Seeds 0-1 (a), seeds 2-3 run later (b), and all four seeds at once (whole)."""
    root = tmp_path_factory.mktemp("merge")
    for name, seeds in (("a", "0,1"), ("b", "2,3"), ("whole", "0,1,2,3")):
        multirun(root / name, *GRID, f"seed={seeds}")
    return root


def snapshot(folder):
    """Every file under `folder` with its sha256: what 'nothing modified' compares."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(folder).rglob("*"))
        if p.is_file()
    }


def numbers(table):
    return table.select_dtypes("number").to_numpy(float)


def test_load_of_two_sweeps_is_the_sweep_of_all_their_runs(sweeps):
    merged = mlpsweep.load(sweeps / "a", sweeps / "b")
    whole = mlpsweep.load(sweeps / "whole")
    assert sorted(merged.runs["run_id"]) == sorted(whole.runs["run_id"])  # same ids: same runs
    assert len(merged.runs) == 16 and merged.note == "No run appeared in more than one sweep."
    key = ["run_id"]
    cols = ["final_train_loss", "test_accuracy", "spread_rel"]
    pd.testing.assert_frame_equal(
        merged.runs.sort_values(key)[key + cols].reset_index(drop=True),
        whole.runs.sort_values(key)[key + cols].reset_index(drop=True),
    )
    ours, theirs = merged.importance(n_boot=200), whole.importance(n_boot=200)
    assert list(ours["term"]) == list(theirs["term"])
    np.testing.assert_allclose(numbers(ours), numbers(theirs), rtol=1e-9, atol=1e-12)
    assert {"term", "share", "share_lo", "share_hi", "F", "p", "within_noise"} <= set(ours)
    assert "seeds" in set(ours["term"])


def test_runs_in_both_sweeps_are_counted_once_and_said_so(sweeps):
    merged = mlpsweep.load(sweeps / "a", sweeps / "whole")
    assert len(merged.runs) == 16 and merged.runs["run_id"].is_unique
    assert merged.note.startswith("8 runs appeared in more than one sweep")
    assert "counted once" in merged.note


def _copy_with(src, dst, **changes):
    """A copy of sweep `src` whose manifest has `changes` (another harness, other data)."""
    import shutil

    shutil.copytree(src, dst)
    manifest = records.SweepManifest.read(dst)
    replace(manifest, **changes).write(dst)
    return dst


def test_other_data_or_another_harness_is_refused_unless_kept_apart(sweeps, tmp_path):
    a = sweeps / "a"
    old = _copy_with(sweeps / "b", tmp_path / "old", harness="0.0.1")
    with pytest.raises(MergeRefused, match="planned by mlpsweep") as e:
        mlpsweep.load(a, old)
    assert "\n" not in str(e.value) and "keep them apart" in str(e.value)
    manifest = records.SweepManifest.read(a)
    other = {name: "0" * 16 for name in manifest.data}
    moved = _copy_with(sweeps / "b", tmp_path / "moved", data=other)
    with pytest.raises(MergeRefused, match="different .* data"):
        mlpsweep.load(a, moved)
    apart = mlpsweep.load(a, old, keep_apart=True)
    assert apart.runs["sweep"].nunique() == 2 and len(apart.runs) == 16


@pytest.mark.slow  # three reports
def test_report_merge_gives_the_report_of_one_sweep_with_all_the_runs(sweeps, tmp_path, capsys):
    from mlpsweep.cli import main

    a, b, whole = sweeps / "a", sweeps / "b", sweeps / "whole"
    before = snapshot(a), snapshot(b)
    out = tmp_path / "merged"
    assert main(["report", str(a), str(b), "--merge", "--out", str(out)]) == 0
    assert (snapshot(a), snapshot(b)) == before  # nothing in the source sweeps was written
    assert main(["report", str(whole)]) == 0
    for name in ("summary.csv", "importance.csv"):
        ours, theirs = pd.read_csv(out / name), pd.read_csv(whole / name)
        assert list(ours.columns) == list(theirs.columns) and len(ours) == len(theirs) > 0
        np.testing.assert_allclose(numbers(ours), numbers(theirs), rtol=1e-9, atol=1e-12)
        text = ours.select_dtypes(exclude="number")
        pd.testing.assert_frame_equal(text, theirs.select_dtypes(exclude="number"))
    html = (out / "report.html").read_text()
    assert "One report over the union of 2 sweeps" in html
    assert str(a) in html and str(b) in html
    whole_html = (whole / "report.html").read_text()
    verdict = page_text(whole_html.split('id="verdict">')[1].split("</p>")[0])  # opens with it
    assert verdict.startswith("What matters: ") and "of the variance of" in verdict, verdict
    assert "seeds" in verdict and len(verdict.split()) <= 32, verdict
    findings = page_text(whole_html.split("<h2>Findings</h2>")[1].split("<h2>")[0])
    assert verdict.removeprefix("What matters: ") not in findings  # said once
    assert verdict in page_text(html)  # the merged page: the same sentence, the same numbers
    capsys.readouterr()
    assert main(["report", str(a), str(b)]) == 2
    assert "--merge" in capsys.readouterr().err


@pytest.mark.parametrize("out", ["a", "a/sub", "a/runs/x", "link_to_a/sub", "whole"])
def test_merge_never_writes_into_a_sweep_whatever_the_out(sweeps, tmp_path, capsys, out):
    """--out equal to a merged sweep, inside one (directly or through a symlink), or another
    sweep's folder: one line, exit 2, nothing written. (Before: only out == input was caught;
    `--out A/sub` wrote a report inside sweep A.)"""
    from mlpsweep.cli import main

    link = tmp_path / "link_to_a"
    link.symlink_to(sweeps / "a")
    target = (tmp_path if out.startswith("link") else sweeps) / out
    before = snapshot(sweeps), sorted(sweeps.rglob("*"))
    code = main(["report", str(sweeps / "a"), str(sweeps / "b"), "--merge", "--out", str(target)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"mlpsweep: --out {target}: ")
    assert (snapshot(sweeps), sorted(sweeps.rglob("*"))) == before


def test_seeds_per_config_ignores_unfinished_runs_and_says_a_range():
    """A killed sweep's unfinished runs have no knobs (NaN config): they are not seeds of one
    config (the header read "14 seeds per config" for 3 and 2); unequal counts give a range."""
    from mlpsweep.report.build import seeds_per_config

    runs = pd.DataFrame(
        {
            "seed": [0, 1, 2, 5, 6] + [np.nan] * 14,
            "config": ["lr=0.1"] * 3 + ["lr=0.2"] * 2 + ["lr=nan"] * 14,
        }
    )
    assert seeds_per_config(runs) == "2 to 3"
    assert seeds_per_config(runs.iloc[:3]) == "3"
    assert seeds_per_config(runs.iloc[5:]) == ""
