"""How figures name configs: in a legend, on an axis tick, in a panel."""

import numpy as np

from mlpsweep.report.analysis import tick


def short_value(text):
    """A value as written in a config label, in 3 significant digits if a number."""
    try:
        return tick(float(text)) if "." in text or "e" in text else text
    except ValueError:
        return text


def tick_label(analysis, config):
    """A config's values only ("10, mean, 0.1"); the axis label names the dims."""
    if not analysis.dims:
        return config.replace(", ", "\n")
    return "\n".join(short_value(part.split("=", 1)[1]) for part in config.split(", "))


def hue_label(config, facet):
    """A config's label without the dims its panel already names."""
    kept = []
    for part in config.split(", "):
        key, eq, value = part.partition("=")
        if key not in facet:
            kept.append(f"{key}={short_value(value)}" if eq else part)
    return ", ".join(kept) or config


NOT_COMPARED = "0.6"  # the grey a config left out of the comparison is drawn in


def drawn_configs(analysis):
    """The configs a per-config figure draws, in display order: a twin (two spellings of
    one update, twin_of) once, under its first config."""
    twins = twin_of(analysis)
    return [c for c in analysis.configs if c not in twins]


def config_label(analysis, config):
    """A config's tick label, with its twins ("≡ 10, sum, 0.01") and, for a config left
    out of the comparison (it diverges or never learns), "(not compared)"."""
    label = tick_label(analysis, config)
    for twin, first in twin_of(analysis).items():
        if first == config:
            label += "\n≡ " + tick_label(analysis, twin).replace("\n", ", ")
    if config in analysis.degenerate:
        label += "\n(not compared)"
    return label


LEGEND_CHARS = 30  # a legend line: ~30% of an 11-inch figure at 9 pt


def wrap_label(label, width=LEGEND_CHARS):
    """A config label on lines of at most `width` characters, broken after a comma (a
    legend no wider than ~30% of its figure)."""
    lines, line = [], ""
    for part in label.split(", "):
        if line and len(line) + 2 + len(part) > width:
            lines.append(line + ",")
            line = part
        else:
            line = f"{line}, {part}" if line else part
    return "\n".join([*lines, line])


TWIN_STEPS = 50


def twin_of(analysis, rtol=1e-9):
    """{config: the earlier config it is a twin of}: configs whose every seed has the
    same loss, up to rounding, over the first TWIN_STEPS steps: the same update written
    two ways (e.g. `sum` at lr 0.01 and `mean` at lr 0.1 with batch 10). Later the
    rounding differences can grow (chaotic runs amplify them); the update is the same.
    Shorter runs are never twins: every config's first loss comes before any update
    (a `steps=1` sweep of optimizers would otherwise be one config)."""
    if "seed" not in analysis.runs or not len(analysis.history):
        return {}
    losses = {
        r: g["train_loss"].to_numpy() for r, g in analysis.history.groupby("run_id", sort=False)
    }
    buckets, out = {}, {}  # a coarse key first (seeds, lengths, first losses), then allclose
    for cfg in analysis.configs:
        runs = analysis.runs[analysis.runs["config"] == cfg].sort_values("seed")
        curves = [losses.get(r) for r in runs["run_id"]]
        if not curves or any(c is None or len(c) < TWIN_STEPS for c in curves):
            continue
        key = tuple((s, len(c), round(float(c[0]), 6)) for s, c in zip(runs["seed"], curves))
        for other, other_curves in buckets.get(key, []):
            if all(
                np.allclose(c[:TWIN_STEPS], o[:TWIN_STEPS], rtol=rtol, atol=0)
                for c, o in zip(curves, other_curves)
            ):
                out[cfg] = other
                break
        else:
            buckets.setdefault(key, []).append((cfg, curves))
    return out
