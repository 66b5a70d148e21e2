"""What a sweep asks: its study declaration (a sweep file's `study:` block), or one
inferred from what was swept.

    study:
      question: "Does batch 10 oscillate more than batch 100 at an equal step size?"
      compare: [batch_size]        # the scientific dimensions
      nuisance: [lr]               # tuned over: the best value per compared setting
      replicate: seed              # what repeats a config
      metrics: [spread_rel, final_train_loss]   # the first one answers the question
      contrasts:                   # optional: the comparisons the headline states, in order
        - {name: at an equal step, where: {grad_reduction: mean, lr: 0.1}}
      caveat: "5 seeds: small effects stay inconclusive"   # optional, shown with the headline

Without a declaration: seed is the replicate, every other swept key is compared, and
the metrics are the relative loss spread and the final train loss. Without `contrasts`,
the headline states the largest effects the sweep's pairings give.
"""

from dataclasses import dataclass

from mlpsweep.report.metrics import GOALS, METRICS

DEFAULT_METRICS = ("spread_rel", "final_train_loss")
KEYS = ("question", "compare", "nuisance", "replicate", "metrics", "contrasts", "caveat")
DECOMPOSED = ("spread_trajectory_rel", "spread_trajectory_probe_rel")  # see headline


@dataclass(frozen=True)
class DeclaredContrast:
    """A comparison the headline states: the compared dimension's values within the runs
    whose settings match `where` (e.g. grad_reduction=mean, lr=0.1)."""

    name: str
    where: tuple  # ((key, value), ...)

    @classmethod
    def from_dict(cls, data, index):
        if not isinstance(data, dict) or not isinstance(data.get("where"), dict):
            raise ValueError(
                f"study.contrasts[{index}]: must be a mapping like "
                "{name: at an equal step, where: {lr: 0.1}}"
            )
        unknown = sorted(set(data) - {"name", "where"})
        if unknown:
            raise ValueError(f"study.contrasts[{index}]: unknown key {unknown[0]!r}")
        where = tuple((str(k), v) for k, v in data["where"].items())
        label = ", ".join(f"{k}={v}" for k, v in where)
        return cls(name=str(data.get("name") or label), where=where)


@dataclass(frozen=True)
class Study:
    question: str = ""
    compare: tuple = ()
    nuisance: tuple = ()
    replicate: str = "seed"
    metrics: tuple = DEFAULT_METRICS
    contrasts: tuple = ()  # DeclaredContrast each, the primary first
    caveat: str = ""  # what the study itself warns its reader of (shown with the headline)
    declared: bool = False
    objective: str = ""  # a search's objective (Hydra's Optuna sweeper): what it minimised
    objective_of: str = "the search"  # whose objective: "halving" for its metric

    @property
    def select_by(self) -> str:
        """The one rule for "best" on the page (the best nuisance value, e.g. the lr, per
        compared setting; the summary's order): a search's objective; else the study's
        first metric where it is an outcome (GOALS); else the final train loss."""
        if self.objective:
            return self.objective
        first = self.metrics[0] if self.metrics else ""
        return first if first in GOALS else "final_train_loss"

    @property
    def select_note(self) -> str:
        """How "best" was chosen, in words: "by test loss, the search's objective"."""
        label = METRICS.get(self.select_by, (self.select_by,))[0]
        why = f", {self.objective_of}'s objective" if self.objective else ""
        return f"by {label}{why}"

    def check_names(self, known) -> None:
        """ValueError (one line) for a compared, nuisance or replicate name that is not a
        setting of the sweep's runs (`known`: their config keys), or one in two roles."""
        for key in ("compare", "nuisance"):
            for name in getattr(self, key):
                if name not in known:
                    raise ValueError(f"study.{key}: {name!r} is not a setting of this sweep's runs")
        if self.replicate != "seed":
            raise ValueError(
                f"study.replicate: {self.replicate!r}: only seed repeats a config (every other "
                "setting changes the run); leave it out or write replicate: seed"
            )
        both = set(self.compare) & ({*self.nuisance, self.replicate})
        if both:
            raise ValueError(f"study: {sorted(both)[0]!r} is both compared and tuned or replicated")

    @classmethod
    def from_dict(cls, data: dict | None, known_metrics=None) -> "Study":
        """The declaration in `data` (a sweep file's `study:` block); ValueError, one
        line, for an unknown key or metric."""
        if data is not None and not isinstance(data, dict):
            raise ValueError(f"study: must be a mapping with keys {', '.join(KEYS)}")
        data = dict(data or {})
        unknown = sorted(set(data) - set(KEYS))
        if unknown:
            raise ValueError(f"study: unknown key {unknown[0]!r} (keys: {', '.join(KEYS)})")
        for key in ("compare", "nuisance", "metrics"):
            value = data.get(key)
            if value is not None and (
                not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value)
            ):
                raise ValueError(
                    f"study.{key}: must be a list of names, e.g. {key}: [batch_size] "
                    f"(got {value!r})"
                )
        for key in ("question", "replicate", "caveat"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise ValueError(f"study.{key}: must be a string (got {data[key]!r})")
        metrics = tuple(data.get("metrics") or DEFAULT_METRICS)
        bad = [m for m in metrics if known_metrics is not None and m not in known_metrics]
        if bad:
            raise ValueError(
                f"study.metrics: unknown metric {bad[0]!r} (known: {', '.join(known_metrics)})"
            )
        contrasts = data.get("contrasts") or ()
        if not isinstance(contrasts, (list, tuple)):
            raise ValueError("study.contrasts: must be a list of {name: ..., where: {...}}")
        return cls(
            contrasts=tuple(DeclaredContrast.from_dict(c, i) for i, c in enumerate(contrasts)),
            question=str(data.get("question") or ""),
            caveat=str(data.get("caveat") or ""),
            compare=tuple(data.get("compare") or ()),
            nuisance=tuple(data.get("nuisance") or ()),
            replicate=str(data.get("replicate") or "seed"),
            metrics=metrics,
            declared=bool(data),
        )

    def compared(self, swept: list[str]) -> list[str]:
        """The compared dimensions among `swept` (declared, else all but the nuisance)."""
        if self.compare:
            return [d for d in self.compare if d in swept]
        return [d for d in swept if d not in self.nuisance and d != self.replicate]
