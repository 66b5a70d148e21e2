"""A run's identity: what determines its numbers, and the run id hashed from it.

The rule that keeps old ids valid. A sweep resumes by finding records under their run
ids, so an id must not change when the code grows a knob. The fields below were the
whole TrainConfig when ids were introduced, and are always hashed. A knob added later
is hashed only when its value differs from its default, and its default must keep the
old behaviour: old runs then keep their ids, and only runs that use the new knob get
new ones. (tests/test_records.py holds a record written before this rule and checks
that it still resumes after a knob is added.) A knob declared with `numbers=False`
(core/config.py: it changes no number, e.g. checkpoint_every) is never hashed.
"""

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass

from mlpsweep.core import TrainConfig

HASHED_ALWAYS = (
    "depth",
    "width",
    "hidden_sizes",
    "activation",
    "init",
    "weight_decay",
    "dropout",
    "optimizer",
    "optimizer_params",
    "lr",
    "batch_size",
    "steps",
    "eval_every",
    "seed",
    "dtype",
    "grad_reduction",
    "sampler",
    "rng",
    "loss_eps",
)
RUN_ID = re.compile(r"[0-9a-f]{16}")


def is_run_id(text: object) -> bool:
    """A run id is 16 hex digits: nothing that could name another folder."""
    return isinstance(text, str) and RUN_ID.fullmatch(text) is not None


def _default(f):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


@dataclass(frozen=True)
class RunIdentity:
    train: TrainConfig
    dataset: str
    data_fingerprint: str

    def hashed_train_fields(self):
        out = {}
        for f in dataclasses.fields(self.train):
            if not f.metadata.get("numbers", True):
                continue
            value = getattr(self.train, f.name)
            if f.name in HASHED_ALWAYS or value != _default(f):
                out[f.name] = value
        return out

    @property
    def run_id(self) -> str:
        identity = {
            "train": self.hashed_train_fields(),
            "dataset": self.dataset,
            "data": self.data_fingerprint,
        }
        text = json.dumps(identity, sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
