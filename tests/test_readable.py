"""The page read as a newcomer reads it: a plain verdict first (from the same contrasts as
the detailed headline), every term it uses defined and linked at its first use, every
"–" footnoted, the summary sorted by the study's own metric."""

import re
from html import unescape

import pytest
from test_referee import ZIPPED, plain, write_curves

from mlpsweep.report import build_report
from mlpsweep.report.analysis import analyse
from mlpsweep.report.collect import collect
from mlpsweep.report.effects import contrasts
from mlpsweep.report.glossary import TERMS, link_first_uses, used
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


def test_an_inconclusive_contrast_says_it_cannot_tell_and_what_would(tmp_path):
    same = [({"batch_size": 10}, 0.3, 0.1), ({"batch_size": 100}, 0.3, 0.1)]
    sweep = write_curves(tmp_path, same, seeds=3, steps=200)
    a = analyse(collect(sweep, write=False))
    [c] = contrasts(a, Study.from_dict({}), "spread_rel")[0]
    assert not c.conclusive
    line = verdict(a, Study.from_dict({}))
    assert line.startswith("Can't tell") and "more seeds" in line, line


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
