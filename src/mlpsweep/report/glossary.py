"""The page's "How to read this page": a short definition of each term the page uses,
and only those, with the first use of each in the page's text linked to it (a hover
title carries the definition too)."""

import html
import re
from typing import NamedTuple


class Term(NamedTuple):
    key: str  # its anchor: #term-<key>
    name: str  # as the glossary lists it
    pattern: str  # a regex matching its uses in the page's text (case-insensitive)
    text: str  # the definition


TERMS = (
    Term(
        "verdict",
        "verdict",
        r"\bverdict\b",
        "The first line: the answer in plain words. The sentences below it give the numbers "
        "and their intervals.",
    ),
    Term(
        "ci",
        "95% interval (CI)",
        r"95% (?:CI|interval|bootstrap interval)",
        "The range that holds the true value 95 times in 100 repetitions of the study. A "
        "narrow interval means the seeds agree; with one seed there is none.",
    ),
    Term(
        "inconclusive",
        "inconclusive",
        r"\binconclusive\b",
        "The interval includes no change (a ratio of 1, a difference of 0): these seeds "
        "cannot tell whether there is an effect. More seeds narrow the interval.",
    ),
    Term(
        "paired",
        "paired interval",
        r"\bpaired(?: t-interval| by seed)?",
        "Both settings started from the same weights (same seed, same network), so each seed "
        "gives one before/after pair; the interval is over those per-seed ratios, which "
        "removes the seed-to-seed variation both share.",
    ),
    Term(
        "welch",
        "Welch's t-interval",
        r"Welch(?:'|&#39;)s t-interval",  # the page's text is escaped HTML
        "The interval used when the runs cannot be paired (different networks or seeds): it "
        "compares the two groups' means allowing each its own variance.",
    ),
    Term(
        "geomean",
        "geometric mean",
        r"\bgeometric means?\b",
        "The mean of the logarithms, mapped back: the right average of ratios and positive "
        "quantities such as losses (one seed at 10x does not dominate it).",
    ),
    Term(
        "spread",
        "relative loss spread",
        r"\brelative (?:loss )?spread\b",
        "How much the training loss scatters around its moving average over the last half of "
        "training, relative to that average (a standard deviation over a mean): the "
        "report's measure of oscillation.",
    ),
    Term(
        "minibatch",
        "minibatch loss",
        r"\bminibatch loss\b",
        "The loss the optimizer sees at each step: the mean over the B examples of that step's "
        "batch, so it moves with the batch drawn as well as with the weights.",
    ),
    Term(
        "sampling",
        "sampling noise",
        r"\bsampling noise\b",
        "The part of the minibatch loss's scatter that comes from which B examples were drawn, "
        "not from the weights: an average of B examples varies about 1/sqrt(B) as much as "
        "one example, so a small batch looks noisier even if the weights stand still.",
    ),
    Term(
        "share",
        "sampling share",
        r"\bsampling share\b",
        "The fraction of the minibatch loss's variance that is sampling noise; the rest is "
        "the weights' own movement.",
    ),
    Term(
        "trajectory",
        "trajectory",
        r"\btrajector(?:y|ies)\b",
        "The path of the weights themselves during training. Its oscillation is the question; "
        "it is the minibatch loss's scatter with the sampling noise taken out.",
    ),
    Term(
        "probe",
        "probe (trajectory probe)",
        r"\bprobe\b",
        "A fixed set of 500 training examples on which the loss of the current weights is "
        "measured at every step of the last half. The same examples every step: it is a "
        "thermometer that reads the weights (the temperature) without the minibatch's "
        "sampling noise.",
    ),
    Term(
        "effective_lr",
        "effective lr",
        r"\beffective (?:lr|learning rate)\b",
        "The step the optimizer actually takes per unit of mean gradient: lr under "
        "grad_reduction=mean, lr x batch size under grad_reduction=sum (the gradient summed "
        "over the batch).",
    ),
    Term(
        "noise_scale",
        "noise scale lr/B",
        r"\blr ?/ ?(?:B|batch size)\b",
        "The effective lr over the batch size: SGD's gradient noise grows with it (Smith & "
        "Le 2018), so configs with equal lr/B should oscillate alike.",
    ),
    Term(
        "twins",
        "twins",
        r"\btwins?\b",
        "Two configs whose runs take the same updates (e.g. sum at lr 0.01 and mean at lr 0.1 "
        "for batch 10): their curves coincide and are drawn once.",
    ),
    Term(
        "equal_examples",
        "equal examples",
        r"\bequal examples\b",
        "Compared over the same number of training examples seen rather than the same number "
        "of steps (a batch-100 step sees 10x the examples of a batch-10 step).",
    ),
    Term(
        "main_effect",
        "main effect",
        r"\bmain effects?\b",
        "A compared dimension's effect on a metric with the other dimensions held equal (one "
        "line per setting of them, never averaged over them).",
    ),
    Term(
        "interaction",
        "interaction",
        r"\binteractions?\b",
        "When one dimension's effect depends on another's value (e.g. the batch size matters "
        "at one lr but not at another).",
    ),
    Term(
        "robust",
        "robust sigmas",
        r"\brobust sigmas?\b",
        "A spread that outliers do not inflate: 1.4826 x the median absolute deviation "
        "(equal to the standard deviation for Gaussian noise).",
    ),
    Term(
        "spikes",
        "spikes",
        r"\bspikes\b",
        "Steps whose loss jumps more than 3 robust sigmas above its moving average.",
    ),
    Term(
        "degenerate",
        "not compared (degenerate)",
        r"\bdegenerate\b|\bNot compared\b",
        "Configs that diverged or never learned: their numbers would compare unlike things, "
        "so they are left out of the headline, findings and main effects.",
    ),
    Term(
        "steps_to_target",
        "steps to target",
        r"\bsteps to (?:target|test)\b",
        "The first evaluation step at which the run reached the study's target (e.g. test "
        "accuracy 0.85); the run stops there, so its final loss and accuracy are not compared.",
    ),
    Term(
        "examples_to_target",
        "examples to target",
        r"\bexamples to (?:target|test)\b",
        "Steps to target x batch size: the training examples it took to reach the target.",
    ),
    Term(
        "bcrit",
        "B_crit (critical batch size)",
        r"\bB_crit\b|\bcritical batch size\b",
        "Emin/Smin from the fit S = Smin + Emin/B of steps S to target against batch size B: "
        "below it doubling the batch nearly halves the steps; above it, it barely helps.",
    ),
    Term(
        "smin",
        "Smin, Emin",
        r"\b[SE]min\b",
        "The fewest steps (at a very large batch) and the fewest examples (at a very small "
        "batch) that reach the target, from the fit S = Smin + Emin/B.",
    ),
    Term(
        "bsimple",
        "B_simple",
        r"\bB_simple\b",
        "The gradient noise scale measured along training (trace of the gradient's covariance "
        "over its squared norm, McCandlish et al. 2018): a predictor of B_crit from one run.",
    ),
    Term(
        "objective",
        "objective",
        r"\bobjective\b",
        "The number an adaptive search optimises (e.g. the final test loss), one per trial.",
    ),
    Term(
        "trial",
        "trial",
        r"\btrials?\b",
        "One setting the search proposed and trained (one run per trial unless seeds are "
        "swept too).",
    ),
    Term(
        "best_lr",
        "best lr per setting",
        r"\bat its best\b|\bbest lr\b",
        "A tuned (nuisance) dimension such as lr is not compared: at each compared setting "
        "the value best by the page's one rule is used (named wherever a best lr is: a "
        "search's or halving's objective, else the study's first outcome such as steps to "
        "target, else the lowest mean final train loss), so each batch size is seen at its "
        "own best lr.",
    ),
)
BY_KEY = {t.key: t for t in TERMS}


def used(texts) -> list[Term]:
    """The terms that appear in `texts` (the page's sentences), in glossary order."""
    joined = "\n".join(texts)
    return [t for t in TERMS if re.search(t.pattern, joined, re.I)]


SKIP = {"script", "style", "code", "pre", "a", "summary", "title", "h1", "abbr", "dl"}


def link_first_uses(page: str, terms, start_marker: str) -> str:
    """`page` with the first use of each term after `start_marker` (in text, never in a
    tag, an attribute, code, a link or a summary) wrapped in a link to its definition,
    its hover title the definition."""
    head, sep, body = page.partition(start_marker)
    if not sep:
        return page
    pending = {t.key: re.compile(t.pattern, re.I) for t in terms}
    parts = re.split(r"(<[^>]+>)", body)
    open_skips: list[str] = []
    for i, part in enumerate(parts):
        if part.startswith("<"):
            m = re.match(r"<(/?)([a-zA-Z0-9]+)", part)
            if m:
                closing, tag = m.group(1) == "/", m.group(2).lower()
                if tag in SKIP:
                    if closing and tag in open_skips:
                        open_skips.remove(tag)
                    elif not closing:
                        open_skips.append(tag)
            continue
        if open_skips or not pending or not part.strip():
            continue
        parts[i] = _link_in(part, pending)
    return head + sep + "".join(parts)


def _link_in(text, pending):
    """`text` (escaped HTML text) with the first match of each pending term linked; a
    linked term is removed from `pending`. Matches never overlap."""
    spans = []
    for key, rx in list(pending.items()):
        m = rx.search(text)
        if m and not any(m.start() < e and s < m.end() for s, e, _ in spans):
            spans.append((m.start(), m.end(), key))
            del pending[key]
    for s, e, key in sorted(spans, reverse=True):
        title = html.escape(BY_KEY[key].text, quote=True)
        text = (
            f'{text[:s]}<a class="term" href="#term-{key}" title="{title}">{text[s:e]}</a>'
            f"{text[e:]}"
        )
    return text
