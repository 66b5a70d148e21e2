"""The page read as a newcomer reads it: a plain verdict first (from the same contrasts as
the detailed headline), every term it uses defined and linked at its first use, every
"–" footnoted, the summary sorted by the study's own metric."""

import re
from html import unescape

import numpy as np
import pytest
from test_referee import ZIPPED, plain, write_curves

from mlpsweep import records
from mlpsweep.core import TrainConfig
from mlpsweep.report import build_report
from mlpsweep.report.analysis import analyse, summary
from mlpsweep.report.caveats import share_text
from mlpsweep.report.collect import collect
from mlpsweep.report.declared import declared_headline
from mlpsweep.report.effects import contrasts
from mlpsweep.report.glossary import TERMS, link_first_uses, used
from mlpsweep.report.intervals import sampling_shares
from mlpsweep.report.study import Study
from mlpsweep.report.tables import Footnotes, sort_metric
from mlpsweep.report.verdict import verdict

TWO = [({"batch_size": 10}, 0.3, 0.3), ({"batch_size": 100}, 0.3, 0.05)]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """{seeds: (sweep folder, its report.html)} of TWO at 1 and 4 seeds."""
    out = {}
    for seeds in (1, 4):
        sweep = write_curves(tmp_path_factory.mktemp(f"s{seeds}"), TWO, seeds=seeds, steps=200)
        out[seeds] = sweep, build_report(sweep).read_text()
    return out


def verdict_of(html):
    return plain(re.search(r'<p class="verdict" id="verdict">(.*?)</p>', html, re.S).group(1))


@pytest.mark.parametrize("seeds", [1, 4])
def test_the_verdict_answers_in_at_most_30_words_from_the_headline_contrast(built, seeds):
    sweep, html = built[seeds]
    a = analyse(collect(sweep, write=False))
    study = Study.from_dict({})
    line = verdict(a, study)
    assert len(line.split()) <= 30, line
    [c] = contrasts(a, study, study.metrics[0])[0]
    if seeds == 1:  # no interval: says so, and what would give one
        assert line.startswith("No answer yet") and "seed=range(5)" in line, line
    else:  # the same contrast the headline states: its factor and interval
        assert c.conclusive and line.startswith("Yes:"), line
        assert f"{1 / c.effect:.3g}x lower" in line and f"{1 / c.hi:.3g}-" in line, line
    assert verdict_of(html) == line
    top = html.index('id="verdict"')
    assert top < html.index('class="headline"') and top < html.index("<h2>Summary")
    # the 95% interval boilerplate only where there are intervals
    assert ("half-width of its 95% interval" in html) == (seeds > 1)
    assert ("paired t-interval" in html) == (seeds > 1)


@pytest.mark.parametrize("sampling, mostly", [(1.0, True), (0.2, False)])
def test_a_scatter_that_is_mostly_sampling_noise_says_so_in_the_first_line(
    tmp_path, sampling, mostly
):
    """Batch 100's minibatch loss scatters less; when that scatter is mostly the noise of a
    B-example average, the first line says so, for a reader who stops there."""
    sweep = write_curves(tmp_path, TWO, seeds=4, steps=200, sampling=sampling)
    a = analyse(collect(sweep, write=False))
    line = verdict(a, Study.from_dict({}))
    assert line.startswith("Yes:") and len(line.split()) <= 32, line
    assert ("mostly sampling noise" in line) == mostly, line
    if mostly:
        share = sampling_shares(a.comparable[a.comparable["batch_size"] == 10])[1].mean
        amount = f"estimated {share:.0%}," if share > 1 else f"{share_text(share)} of its"
        assert amount in line and "at batch_size=10), not the weights' own" in line, line


def test_an_inconclusive_contrast_says_it_cannot_tell_and_what_would(tmp_path):
    same = [({"batch_size": 10}, 0.3, 0.1), ({"batch_size": 100}, 0.3, 0.1)]
    sweep = write_curves(tmp_path, same, seeds=3, steps=200)
    a = analyse(collect(sweep, write=False))
    [c] = contrasts(a, Study.from_dict({}), "spread_rel")[0]
    assert not c.conclusive
    line = verdict(a, Study.from_dict({}))
    assert line.startswith("Can't tell") and "more seeds" in line, line


def test_an_effect_that_flips_with_another_knob_is_not_a_one_line_yes(tmp_path):
    """Batch 100 spreads less at lr=0.1 and more at lr=1, both clearly: the first line says
    it depends, and on what, rather than the larger one's "Yes"."""
    flips = [
        ({"batch_size": 10, "lr": 0.1}, 0.3, 0.2),
        ({"batch_size": 100, "lr": 0.1}, 0.3, 0.05),
        ({"batch_size": 10, "lr": 1.0}, 0.3, 0.05),
        ({"batch_size": 100, "lr": 1.0}, 0.3, 0.1),
    ]
    a = analyse(collect(write_curves(tmp_path, flips, seeds=4, steps=300), write=False))
    found = contrasts(a, Study.from_dict({}), "spread_rel")[0]
    assert {c.effect < 1 for c in found if c.dim == "batch_size" and c.conclusive} == {
        True,
        False,
    }
    line = verdict(a, Study.from_dict({}))
    knob = "lr" if "at batch_size=" in line else "batch_size"  # the larger effect leads
    assert line.startswith("It depends:") and line.count(f"where {knob}=") == 2, line
    # variance shares average a flip away ("within seed noise"): the flip still leads
    from mlpsweep.report.importance import what_matters

    shares = what_matters(a, Study.from_dict({}), n_boot=50)
    assert shares and verdict(a, Study.from_dict({}), shares=shares) == line
    assert "lower" in line and "higher" in line and len(line.split()) <= 30, line


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_a_declared_oscillation_study_says_how_much_more_and_the_sampling_share(tmp_path):
    study = {
        "compare": ["batch_size"],
        "metrics": ["spread_rel", "final_train_loss"],
        "contrasts": [{"name": "at an equal step", "where": {"grad_reduction": "mean", "lr": 0.1}}],
    }
    sweep = write_curves(tmp_path, ZIPPED, study=study)
    html = build_report(sweep).read_text()
    line = verdict_of(html)
    assert len(line.split()) <= 30, line
    # spread_rel is not decomposed: the generic contrast of the headline's metric
    assert "relative loss spread" in line, line


def test_the_glossary_defines_only_the_terms_the_page_uses_and_links_their_first_use(built):
    html = built[4][1]
    defined = re.findall(r'<dt id="term-([a-z_]+)">', html)
    assert defined and len(defined) == len(set(defined))
    body = html.split("</dl></details>")[1]
    text = re.sub(r"<[^>]+>", " ", body)  # table cells apart
    for term in TERMS:  # defined if and only if the page (outside the glossary) uses it
        if term.key in defined:
            assert re.search(term.pattern, text, re.I), term.name
    assert "B_crit" not in text and "bcrit" not in defined
    for key in defined:  # every defined term's first use links to it, once
        if key == "verdict":
            continue
        assert 1 <= html.count(f'href="#term-{key}"') <= 1, key


def test_links_never_go_into_code_attributes_or_summaries():
    terms = [t for t in TERMS if t.key in ("probe", "twins")]
    page = (
        '<h1>x</h1><!--terms--><code>trajectory_probe=500</code><img alt="probe">'
        "<summary>twins</summary><p>the probe and the probe; twins</p>"
    )
    out = link_first_uses(page, terms, "<!--terms-->")
    assert "<code>trajectory_probe=500</code>" in out and 'alt="probe"' in out
    assert "<summary>twins</summary>" in out
    assert out.count('href="#term-probe"') == 1 and out.count('href="#term-twins"') == 1
    assert 'the <a class="term" href="#term-probe"' in out
    assert used(["no such words"]) == []


def test_every_dash_has_a_footnote_and_the_summary_sorts_by_the_studys_metric(built):
    sweep, html = built[1]
    marks = set(re.findall(r"– \[(\d+)\]", plain(html)))
    notes = set(re.findall(r'<li value="(\d+)">', html))
    assert marks and marks <= notes, (marks, notes)
    assert "best final train loss (the page's rule for best) first" in unescape(html)
    f = Footnotes()
    assert f.dash("a") == "– [1]" and f.dash("b") == "– [2]" and f.dash("a") == "– [1]"
    a = analyse(collect(sweep, write=False))
    assert sort_metric(a, Study.from_dict({"metrics": ["final_train_loss"]})) == "final_train_loss"


PROBED = {
    "compare": ["batch_size"],
    "metrics": ["spread_trajectory_probe_rel", "final_train_loss"],
    "contrasts": [{"name": "at an equal step", "where": {"lr": 0.1}}],
}


def write_probed(folder, seeds=4, steps=400, overstate=1.6, wiggles=None, study=PROBED):
    """A declared equal-step oscillation study: batch 10 and 100, each run a falling
    trajectory (recorded by a full probe) that wiggles, plus sampling noise of known
    variance v; the record states v `overstate` times too large, so the per-run recorded
    shares exceed 1 while the probe's (the page's rule) stay near the truth."""
    rng = np.random.default_rng(3)
    step = np.arange(1, steps + 1)
    planned = []
    wiggles = wiggles or {0.1: (0.02, 0.006)}  # lr -> (batch 10's wiggle, batch 100's)
    cells = [(lr, b, w) for lr, pair in wiggles.items() for b, w in zip((10, 100), pair)]
    for lr, batch, wiggle in cells:
        for seed in range(seeds):
            tc = TrainConfig(seed=seed, batch_size=batch, lr=lr)
            rid = records.RunIdentity(tc, "mnist_5k", "x").run_id
            traj = 0.3 + 2.0 * np.exp(-step / 8) + wiggle * np.sin(step * (1.3 + 0.1 * seed))
            sd = 0.1 / np.sqrt(batch)
            loss = traj + rng.normal(0, sd, steps)
            history = {
                "step": step,
                "examples_seen": step * batch,
                "train_loss": loss,
                "loss_sampling_var": np.full(steps, overstate * sd**2),
                "trajectory_loss": traj,
                "trajectory_sampling_var": np.zeros(steps),
            }
            overrides = (f"batch_size={batch}", f"lr={lr}")
            metrics = records.RunMetrics(
                rid, "ok", list(overrides), steps_done=steps, final_train_loss=float(loss[-1])
            )
            records.write_run(
                folder / "runs" / rid,
                records.RunRecord(
                    {"batch_size": batch, "lr": lr, "seed": seed}, metrics, "", history
                ),
            )
            planned.append(records.PlannedRun(rid, overrides))
    records.SweepManifest(runs=planned, command="test", study=study).write(folder)
    return folder


def test_a_second_declared_contrast_that_goes_the_other_way_is_in_the_first_line(tmp_path):
    """The seed's question has two halves: at an equal step batch 10 oscillates more, but
    in the listing's runs (batch 100 stepping further) less. The first line says both,
    so a reader who stops there does not take the first half for the answer."""
    study = {
        **PROBED,
        "contrasts": [
            {"name": "at an equal step", "where": {"lr": 0.1}},
            {"name": "the listing's runs", "where": {"lr": 0.01}},
        ],
    }
    wiggles = {0.1: (0.02, 0.006), 0.01: (0.006, 0.02)}
    sweep = write_probed(tmp_path, wiggles=wiggles, study=study)
    line = verdict(
        analyse(collect(sweep, write=False), first=["batch_size"]), Study.from_dict(study)
    )
    assert line.startswith("At an equal step, batch_size=10's weights oscillate"), line
    assert "more than at 100" in line and "; in the listing's runs, " in line, line
    assert re.search(r"the listing's runs, [\d.]+x less \(95% CI", line), line
    assert len(line.split()) <= 32, line
    same = {0.1: (0.02, 0.006), 0.01: (0.02, 0.006)}  # both halves agree: one stands
    sweep = write_probed(tmp_path / "same", wiggles=same, study=study)
    line = verdict(
        analyse(collect(sweep, write=False), first=["batch_size"]), Study.from_dict(study)
    )
    assert "listing" not in line and "sampling noise" in line, line


def test_the_oscillation_verdict_states_the_headlines_sampling_share(tmp_path):
    """The verdict's share is the headline's (intervals.sampling_shares: from the probe where
    it measured, pooled), never the mean of per-run recorded shares (which read "100%"
    beside the headline's 96% on the batch_oscillation page)."""
    sweep = write_probed(tmp_path)
    study = Study.from_dict(PROBED)
    a = analyse(collect(sweep, write=False), first=study.compare)
    line = verdict(a, study)
    assert line.startswith("At an equal step, batch_size=10's weights oscillate"), line
    at10 = a.finished[a.finished["batch_size"] == 10]
    pooled = sampling_shares(at10)[1].mean
    assert 0.8 < pooled < 1, pooled
    assert at10["sampling_share"].mean() > 1.2  # the recorded per-run shares: not the rule
    assert f"; {share_text(pooled)} of batch_size=10's visible scatter" in line, line
    # and the headline below states the same share (to its extra decimal)
    head = " ".join(declared_headline(a, study))
    assert f"{pooled:.1%} [" in head or f"{share_text(pooled)} [" in head, head


def test_the_summary_states_the_same_sampling_share_as_the_headline(tmp_path):
    """The summary's sampling-share column pools by the page's one rule, as the verdict
    and headline do, not the mean of per-run recorded shares (it read 1.004 beside the
    headline's 96.1% on the batch_oscillation page)."""
    sweep = write_probed(tmp_path)
    a = analyse(collect(sweep, write=False), first=["batch_size"])
    table = summary(a).set_index("config")
    for batch in (10, 100):
        pooled = sampling_shares(a.finished[a.finished["batch_size"] == batch])[1].mean
        config = f"batch_size={batch}"
        assert table.loc[config, "_sampling_share"] == pytest.approx(pooled, rel=1e-9)
    assert (table["_sampling_share"] < 1).all(), table["_sampling_share"]
