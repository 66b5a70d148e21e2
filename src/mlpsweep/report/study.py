"""What a sweep asks: its study declaration (a sweep file's `study:` block), or one
inferred from what was swept.

    study:
      question: "Does batch 10 oscillate more than batch 100 at an equal step size?"
      compare: [batch_size]        # the scientific dimensions
      nuisance: [lr]               # tuned over: the best value per compared setting
      replicate: seed              # what repeats a config
      metrics: [spread_rel, final_train_loss]   # the first one answers the question

Without a declaration: seed is the replicate, every other swept key is compared, and
the metrics are the relative loss spread and the final train loss.
"""

from dataclasses import dataclass

DEFAULT_METRICS = ("spread_rel", "final_train_loss")
KEYS = ("question", "compare", "nuisance", "replicate", "metrics")
METRICS = {  # what a study can name: run column -> (label, higher is better)
    "final_train_loss": ("final train loss", False),
    "test_accuracy": ("test accuracy", True),
    "test_loss": ("test loss", False),
    "spread": ("loss spread", False),
    "spread_rel": ("relative loss spread", False),
    "spread_rel_ex": ("relative loss spread over equal examples", False),
    "mean_abs_change": ("mean |step change|", False),
    "mean_abs_change_rel": ("relative mean |step change|", False),
    "spikes": ("spikes", False),
    "steps_to_target": ("steps to target", False),
    "examples_to_target": ("examples to target", False),
}


@dataclass(frozen=True)
class Study:
    question: str = ""
    compare: tuple = ()
    nuisance: tuple = ()
    replicate: str = "seed"
    metrics: tuple = DEFAULT_METRICS
    declared: bool = False

    @classmethod
    def from_dict(cls, data, known_metrics=None):
        """The declaration in `data` (a sweep file's `study:` block); ValueError, one
        line, for an unknown key or metric."""
        data = dict(data or {})
        unknown = sorted(set(data) - set(KEYS))
        if unknown:
            raise ValueError(f"study: unknown key {unknown[0]!r} (keys: {', '.join(KEYS)})")
        metrics = tuple(data.get("metrics") or DEFAULT_METRICS)
        bad = [m for m in metrics if known_metrics is not None and m not in known_metrics]
        if bad:
            raise ValueError(
                f"study.metrics: unknown metric {bad[0]!r} (known: {', '.join(known_metrics)})"
            )
        return cls(
            question=str(data.get("question") or ""),
            compare=tuple(data.get("compare") or ()),
            nuisance=tuple(data.get("nuisance") or ()),
            replicate=str(data.get("replicate") or "seed"),
            metrics=metrics,
            declared=bool(data),
        )

    def compared(self, swept):
        """The compared dimensions among `swept` (declared, else all but the nuisance)."""
        if self.compare:
            return [d for d in self.compare if d in swept]
        return [d for d in swept if d not in self.nuisance and d != self.replicate]
