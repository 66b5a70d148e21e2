import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from listing import listing_losses
from threadpoolctl import threadpool_limits

from mlpsweep.core import TrainConfig, train
from mlpsweep.core.config import ConfigError

FIXTURE = Path(__file__).parent / "fixtures" / "listing_losses.json"
LISTING = Path(__file__).resolve().parents[2] / "shared" / "seed" / "day60_reference.py"
SETTINGS = json.loads(FIXTURE.read_text())["settings"]


def listing_replay(dataset, batch, steps=1000):
    cfg = TrainConfig(**SETTINGS).replace(batch_size=batch, steps=steps, eval_every=0)
    return train(cfg, dataset)


@pytest.mark.repro
@pytest.mark.parametrize("batch", [10, 100])
def test_replays_the_listing_on_this_machine(mnist_5k, batch):
    """The harness against the listing's arithmetic computed here, now: the oracle rounds
    like the harness whatever this CPU's BLAS kernel does. The batch-100 run is chaotic
    (a last-bit difference grows ~10x every 25 steps), so agreeing to 1e-12 over 400
    steps means the same arithmetic, operation for operation (only the loss formula's
    last bit may differ: 4e-16 measured)."""
    result = listing_replay(mnist_5k, batch, steps=400)
    expected = listing_losses(mnist_5k.x_train, mnist_5k.y_train, batch, steps=400)
    assert result.status == "ok" and result.steps_done == 400
    np.testing.assert_allclose(result.train_loss, expected, rtol=1e-12, atol=0)


# How many steps of the committed losses hold on any x86-64 CPU. They were computed on
# an AMD EPYC (OpenBLAS Haswell kernel); another kernel, or numpy's own SIMD sums on
# another CPU, round differently in the last bit. At batch 10 that stays at rounding
# level for all 1,000 steps (measured: <= 9e-15 relative under the SkylakeX, Haswell,
# Sandybridge, Nehalem and Katmai kernels). The batch-100 run amplifies it about 10x per
# 25 steps: 1.9e-16 at step 1 and 2e-12 at step 100 on an Intel SkylakeX machine, and
# above 1e-12 from step 87 under Nehalem. Its first 50 steps stay ~100x inside 1e-12.
CROSS_MACHINE_STEPS = {10: 1000, 100: 50}


@pytest.mark.repro
@pytest.mark.parametrize("batch", [10, 100])
def test_matches_the_committed_listing_losses_on_any_cpu(mnist_5k, batch):
    steps = CROSS_MACHINE_STEPS[batch]
    expected = np.array(json.loads(FIXTURE.read_text())["losses"][str(batch)][:steps])
    result = listing_replay(mnist_5k, batch, steps)
    np.testing.assert_allclose(result.train_loss, expected, rtol=1e-12, atol=0)


@pytest.mark.repro
@pytest.mark.skipif(not LISTING.exists(), reason="the seed listing (../shared/seed) is absent")
def test_the_oracle_is_the_listing(mnist_5k, tmp_path):
    """tests/listing.py against the seed's own program, run here on one BLAS thread:
    bitwise equal, so the replay test above checks against the listing itself."""
    out = tmp_path / "losses.json"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(LISTING), "--batch-size", "100", "--steps", "150", "--out", out]
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    with threadpool_limits(limits=1, user_api="blas"):
        ours = listing_losses(mnist_5k.x_train, mnist_5k.y_train, 100, steps=150)
    assert np.array_equal(ours, np.array(json.loads(out.read_text())))


def run(ds, **kw):
    return train(TrainConfig(steps=60, eval_every=20, width=16, **kw), ds)


@pytest.mark.repro
@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"dropout": 0.3},
        {"sampler": "epoch"},
        {"optimizer": "adam", "lr": 0.01},
        {"dtype": "float64"},
    ],
)
def test_same_seed_same_numbers_other_seed_different(tiny_dataset, kw):
    a, b, c = (
        run(tiny_dataset, seed=1, **kw),
        run(tiny_dataset, seed=1, **kw),
        run(tiny_dataset, seed=2, **kw),
    )
    for field in ("train_loss", "eval_step", "test_loss", "test_accuracy"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert not np.array_equal(a.train_loss, c.train_loss)


def test_learns_and_reports_its_metrics(tiny_dataset):
    r = run(tiny_dataset, lr=0.5, batch_size=20)
    assert r.status == "ok"
    assert r.train_loss[-10:].mean() < 0.5 * r.train_loss[:5].mean()
    assert list(r.eval_step) == [20, 40, 60]
    assert r.test_accuracy[-1] > 0.9
    s = r.summary()
    assert s["examples_seen"] == 60 * 20 and s["steps_done"] == 60
    assert s["steps_per_s"] > 0 and s["wall_seconds"] >= s["train_seconds"] > 0


def test_eval_at_the_end_even_off_schedule(tiny_dataset):
    r = train(TrainConfig(steps=25, eval_every=10, width=8), tiny_dataset)
    assert list(r.eval_step) == [10, 20, 25]
    r = train(TrainConfig(steps=5, eval_every=0, width=8), tiny_dataset)
    assert list(r.eval_step) == [5]


# float32 takes the fused step, float64 the layer path (whose stable loss grows only
# linearly in the logits: it takes a far larger lr to overflow).
@pytest.mark.parametrize("dtype, lr", [("float32", 1e4), ("float64", 1e30)])
def test_divergence_is_reported_not_raised(tiny_dataset, dtype, lr):
    r = run(tiny_dataset, lr=lr, grad_reduction="sum", init=1.0, dtype=dtype)
    assert r.status == "diverged"
    assert r.diverged_step is not None and r.diverged_step <= 60
    assert r.steps_done < r.diverged_step
    assert np.all(np.isfinite(r.train_loss))
    assert np.all(np.isfinite(r.test_loss)) and np.all(np.isfinite(r.test_accuracy))
    assert r.summary()["status"] == "diverged"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"lr": 0.0}, "lr=0.0: must be > 0"),
        ({"lr": -1}, "lr=-1: must be > 0"),
        ({"batch_size": 0}, "batch_size=0: must be an integer >= 1"),
        ({"batch_size": 501}, "batch_size=501: must be an integer >= 1 and <= 500"),
        ({"batch_size": 2.5}, "batch_size=2.5"),
        ({"depth": -1}, "depth=-1"),
        ({"width": 0}, "width=0"),
        ({"steps": 0}, "steps=0"),
        ({"optimizer": "lbfgs"}, "optimizer='lbfgs': must be one of adagrad, adam"),
        ({"activation": "gelu"}, "activation='gelu'"),
        ({"init": "lecun"}, "init='lecun'"),
        ({"init": -0.1}, "init=-0.1"),
        ({"lr": "fast"}, "lr='fast': must be a finite number"),
        ({"dropout": 1.0}, "dropout=1.0: must be >= 0 and < 1"),
    ],
)
def test_bad_values_fail_with_one_line(tiny_dataset, change, message):
    with pytest.raises(ConfigError) as err:
        train(TrainConfig(**change), tiny_dataset)
    assert message in str(err.value) and "\n" not in str(err.value)
