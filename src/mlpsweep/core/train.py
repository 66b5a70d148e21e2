"""train(config, dataset) -> TrainResult: the whole life of one run, in memory."""

import copy
import math
import time

import numpy as np

from mlpsweep.core.batches import BatchLoader, normalizer
from mlpsweep.core.config import TrainConfig
from mlpsweep.core.fused import FusedReluSGD, fused_step_applies
from mlpsweep.core.network import MLP
from mlpsweep.core.noise import noise_stats
from mlpsweep.core.observe import NO_OBSERVER, History, TrainObserver, TrainState
from mlpsweep.core.optimizers import make_optimizer
from mlpsweep.core.result import NOISE_COLUMNS, TrainResult
from mlpsweep.core.sampling import (
    TRAJECTORY_STREAM,
    make_sampler,
    probe_indices,
    rng_state,
    run_streams,
    set_rng_state,
)
from mlpsweep.core.status import Status
from mlpsweep.core.target import SMOOTH, eval_steps, parse_target, steps_to_target
from mlpsweep.core.trajectory import sampling_var_column
from mlpsweep.core.window import trajectory_steps


class Trainer:
    """The parts of one run (network, optimizer, sampler, batch loader), built from the
    config and the seed alone. `step()` is one SGD step: the benchmark times this.

    `fused` picks the arithmetic: None (the default) uses the fused step for float32 runs
    it applies to and the layer path otherwise, whose rounding replays the listing's."""

    def __init__(self, config, dataset, fused=None):
        cfg = self.config = config.validate(train_size=len(dataset.y_train))
        self.dataset = dataset
        self.dtype = np.dtype(cfg.dtype)
        init_rng, sample_rng, dropout_rng = run_streams(cfg.seed, cfg.rng)
        self.dropout_rng = dropout_rng
        self.net = MLP(
            dataset.x_train.shape[1],
            cfg.hidden,
            dataset.num_classes,
            activation=cfg.activation,
            init=cfg.init,
            weight_decay=cfg.weight_decay,
            dropout=cfg.dropout,
            grad_reduction=cfg.grad_reduction,
            loss_eps=cfg.loss_eps,
            dtype=self.dtype,
            init_rng=init_rng,
            dropout_rng=dropout_rng,
        )
        self.optimizer = make_optimizer(cfg.optimizer, cfg.lr, **cfg.optimizer_params)
        self.sampler = make_sampler(cfg.sampler, len(dataset.y_train), cfg.batch_size, sample_rng)
        # The optimizer sees the network as one flat array: same arithmetic, fewer calls.
        self.flat_params = {"all": self.net.flat_params}
        self.flat_grads = {"all": self.net.flat_grads}
        if fused is None:
            fused = self.dtype == np.float32 and fused_step_applies(cfg)
        elif fused and not fused_step_applies(cfg):
            raise ValueError("the fused step needs sgd, relu, no dropout and no weight decay")
        self.fused = FusedReluSGD(self.net, cfg.lr, cfg.batch_size) if fused else None
        self.loader = BatchLoader(
            dataset.x_train,
            dataset.y_train,
            cfg.batch_size,
            self.dtype,
            unit=dataset.train_inputs,
            into=self.fused.x if fused else None,
        )
        if cfg.noise_probe is not None:
            self.probe = probe_indices(cfg.noise_probe, cfg.seed, len(dataset.y_train))
        # Batches drawn without replacement from N examples vary less than independent
        # draws by the finite-population correction (1 - B/N); see loss_sampling_var.
        n = len(dataset.y_train)
        self.sampling_scale = (1 - cfg.batch_size / n if cfg.sampler == "epoch" else 1.0) / (
            cfg.batch_size
        )
        self.trajectory_set = None
        if cfg.trajectory_probe is not None:
            idx = probe_indices(cfg.trajectory_probe, cfg.seed, n, TRAJECTORY_STREAM)
            # Normalised once: the probe is evaluated at hundreds of steps. In float32 at
            # any dtype: twice as fast, and its rounding (1e-7 of the loss) is five orders
            # below the trajectory's spread it measures.
            x = normalizer(np.float32)(dataset.x_train[idx])
            self.trajectory_set = (np.ascontiguousarray(x), dataset.y_train[idx])

    def state(self, step: int, history: History) -> TrainState:
        """A copy of the run's state after `step` steps (see core/observe.py)."""
        streams = {"sampler": self.sampler.state()}
        if self.config.rng == "legacy":  # one RandomState behind all three streams
            streams["shared"] = rng_state(self.dropout_rng)
        else:
            streams["dropout"] = rng_state(self.dropout_rng)
        return TrainState(
            step=step,
            params=self.net.flat_params.copy(),
            optimizer=self.optimizer.snapshot(),
            streams=copy.deepcopy(streams),
            history=history,
            fingerprint=fingerprint(self.config),
        )

    def restore(self, state: TrainState) -> None:
        """Continue from `state`: the next step is the one that followed it."""
        if state.fingerprint != fingerprint(self.config):
            raise ValueError("the checkpoint is another run's (its config differs)")
        if state.params.shape != self.net.flat_params.shape:
            raise ValueError("the checkpoint's weights do not fit this network")
        self.net.flat_params[...] = state.params
        self.optimizer.restore(state.optimizer)
        streams = copy.deepcopy(state.streams)
        self.sampler.restore(streams["sampler"])
        set_rng_state(self.dropout_rng, streams.get("shared", streams.get("dropout")))

    def step(self):
        """Draw a batch, compute its loss, and (when the loss is finite) update the weights.
        Returns the loss of the batch before the update."""
        x, y = self.loader.load(self.sampler.next())
        if self.fused is not None:
            return self.fused.step(x, y)
        loss = self.net.loss(x, y)
        if math.isfinite(loss):
            self.net.backward()
            self.optimizer.update(self.flat_params, self.flat_grads)
        return loss

    def loss_sampling_var(self):
        """The variance of the last step's minibatch loss about the loss of the weights it
        was computed at (the mean per-example loss over the N train examples), estimated
        from the batch's own per-example losses l_1..l_B with s^2 = sum (l_i - mean)^2/(B-1):

        - with replacement, the B draws are independent, each with the train set's
          variance sigma^2 = sum_j (L_j - Lbar)^2 / N; E[s^2] = sigma^2, and the mean of B
          draws varies by sigma^2 / B: the estimate is s^2 / B;
        - without replacement (sampler=epoch; one batch is a simple random sample of B of
          the N), the mean varies by (S^2 / B)(1 - B/N) with S^2 = sum_j (L_j - Lbar)^2 /
          (N - 1), and E[s^2] = S^2 for such a sample: the estimate is s^2 / B (1 - B/N).

        NaN for B = 1 (one example has no sample variance). With dropout the per-example
        losses include the masks' noise, which the minibatch loss has too."""
        layer = self.fused if self.fused is not None else self.net.loss_layer
        return layer.loss_var * self.sampling_scale

    def trajectory_loss(self):
        """The current weights' per-example losses on the trajectory probe (None when it is
        off); their mean is the loss the minibatch losses scatter around, without their
        sampling noise. The same per-example loss as training (loss_eps included), in
        inference mode (no dropout). Reads the weights only: the training is the same
        with or without it."""
        if self.trajectory_set is None:
            return None
        x, y = self.trajectory_set
        return self.net.example_losses(x, y, eps=self.config.loss_eps)

    def evaluate(self):
        """(test loss, test accuracy) of the current weights."""
        d = self.dataset
        return self.net.evaluate(d.x_test, d.y_test, normalizer(self.dtype))

    def noise(self, chunk=256):
        """NoiseStats of the current weights on the probe set (None when it is off). Reads
        the weights only: the training is the same with or without it."""
        if self.config.noise_probe is None:
            return None
        d, normalize = self.dataset, normalizer(self.dtype)
        idx = self.probe
        chunks = (
            (normalize(d.x_train[idx[i : i + chunk]]), d.y_train[idx[i : i + chunk]])
            for i in range(0, len(idx), chunk)
        )
        weights = [(a.W, a.b) for a in self.net.affines]
        return noise_stats(weights, self.config.activation, chunks, len(d.y_train))


def fingerprint(cfg: TrainConfig) -> dict:
    """What a checkpoint must match to be continued by `cfg` (all but checkpoint_every)."""
    return {"config": repr(cfg.replace(checkpoint_every=0))}


def train(
    config: TrainConfig,
    dataset,
    *,
    observer: TrainObserver | None = None,
    start: TrainState | None = None,
    stop_at: int | None = None,
) -> TrainResult:
    """Train an MLP on `dataset` (x_train, y_train, x_test, y_test, num_classes).

    Every random draw comes from `config.seed` through run_streams. A non-finite loss
    stops the run with status "diverged" at that step; nothing is raised.

    `observer` is told each step, evaluation and checkpoint (every `checkpoint_every`
    steps, and when it asks). `start` continues a run from a checkpoint: the result is
    bitwise the uninterrupted run's (timings aside). `stop_at` pauses after that step,
    with a checkpoint: a later train(start=...) takes it on.
    """
    trainer = Trainer(config, dataset)
    cfg = trainer.config
    observer = observer if observer is not None else NO_OBSERVER
    losses = np.empty(cfg.steps, dtype=np.float64)
    sampling_var = np.empty(cfg.steps, dtype=np.float64)
    trajectory = np.full(cfg.steps, np.nan) if trainer.trajectory_set is not None else None
    probe_at: set[int] = set()
    examples = []  # each measured step's per-example probe losses (for the correction)
    if trajectory is not None:
        probe_at = set(trajectory_steps(cfg.steps, cfg.trajectory_every))
        whole = len(trainer.trajectory_set[1]) >= len(dataset.y_train)  # nothing to correct
    evals, noise = [], []  # (step, test_loss, test_accuracy), NoiseStats at those steps
    at = set(eval_steps(cfg.steps, cfg.eval_every, cfg.eval_schedule))
    stop = parse_target(cfg.target) if cfg.stop_at_target else None
    every = cfg.checkpoint_every
    status, diverged_step, done = Status.OK, None, 0
    eval_seconds, before = 0.0, 0.0
    start_time = time.perf_counter()
    if start is None:
        noise_init = trainer.noise()
        noise_init = None if noise_init is None else np.array(noise_init.as_tuple())
    else:
        trainer.restore(start)
        h, done = start.history, start.step
        losses[:done], sampling_var[:done] = h.train_loss, h.loss_sampling_var
        if trajectory is not None and h.trajectory_loss is not None:
            trajectory[:done] = h.trajectory_loss
            examples = list(h.trajectory_examples or [])
        evals = [(int(s), a, b) for s, a, b in h.evals.tolist()]
        noise = [] if h.noise is None else [tuple(row) for row in h.noise.tolist()]
        noise_init, before, eval_seconds = h.noise_init, h.wall_seconds, h.eval_seconds
    eval_seconds += time.perf_counter() - start_time
    last = cfg.steps if stop_at is None else min(stop_at, cfg.steps)

    def history(step):
        return History(
            train_loss=losses[:step].copy(),
            loss_sampling_var=sampling_var[:step].copy(),
            trajectory_loss=None if trajectory is None else trajectory[:step].copy(),
            trajectory_examples=None if trajectory is None else list(examples),
            evals=np.array(evals, dtype=np.float64).reshape(-1, 3),
            noise=None if noise_init is None else np.array(noise, np.float64).reshape(-1, 3),
            noise_init=noise_init,
            wall_seconds=before + time.perf_counter() - start_time,
            eval_seconds=eval_seconds,
        )

    with np.errstate(all="ignore"):  # overflow is expected in a diverging run; we check the loss
        for step in range(done + 1, last + 1):
            if trajectory is not None and step in probe_at:  # the weights this step's
                # minibatch loss is computed at
                t0 = time.perf_counter()
                row = trainer.trajectory_loss()
                trajectory[step - 1] = row.mean()
                examples.append(row[:0] if whole else row)
                eval_seconds += time.perf_counter() - t0
            loss = trainer.step()
            if not math.isfinite(loss):
                status, diverged_step = Status.DIVERGED, step
                break
            losses[step - 1] = loss
            sampling_var[step - 1] = trainer.loss_sampling_var()
            done = step
            observer.on_step(step, loss)
            reached = (
                stop is not None
                and stop.metric == "train_loss"
                and step >= SMOOTH
                and stop.reached(losses[step - SMOOTH : step].mean())
            )
            if step in at or reached:
                t0 = time.perf_counter()
                test_loss, test_acc = trainer.evaluate()
                eval_seconds += time.perf_counter() - t0
                if not math.isfinite(test_loss):
                    # This step's update blew up the weights: the next loss would say so.
                    status, diverged_step = Status.DIVERGED, step + 1
                    break
                evals.append((step, test_loss, test_acc))
                values = {"test_loss": test_loss, "test_accuracy": test_acc}
                if noise_init is not None:
                    t0 = time.perf_counter()
                    noise.append(trainer.noise().as_tuple())
                    eval_seconds += time.perf_counter() - t0
                    values.update(zip(NOISE_COLUMNS, noise[-1]))
                observer.on_eval(step, values)
                if stop is not None and stop.metric != "train_loss":
                    reached = stop.reached(
                        test_acc if stop.metric == "test_accuracy" else test_loss
                    )
                if reached:
                    break  # stop_at_target: the run has answered its question
            if step < cfg.steps and (
                (every and step % every == 0) or step == last or observer.checkpoint_due(step)
            ):
                t0 = time.perf_counter()
                observer.on_checkpoint(trainer.state(step, history(step)))
                eval_seconds += time.perf_counter() - t0  # not training either
    wall = before + time.perf_counter() - start_time
    probe_var = None
    if trajectory is not None:
        probe_var = sampling_var_column(
            examples, sorted(probe_at), done, cfg.steps, cfg.trajectory_every, len(dataset.y_train)
        )
    ev = np.array(evals, dtype=np.float64).reshape(-1, 3)
    first = None
    if cfg.target is not None:
        first = steps_to_target(
            parse_target(cfg.target), losses[:done], ev[:, 0].astype(np.int64), ev[:, 1], ev[:, 2]
        )
    result = TrainResult(
        status=status,
        train_loss=losses[:done].copy(),
        eval_step=ev[:, 0].astype(np.int64),
        test_loss=ev[:, 1],
        test_accuracy=ev[:, 2],
        batch_size=cfg.batch_size,
        diverged_step=diverged_step,
        wall_seconds=wall,
        train_seconds=wall - eval_seconds,
        arithmetic="layers" if trainer.fused is None else "fused",
        noise=None if noise_init is None else np.array(noise, dtype=np.float64).reshape(-1, 3),
        noise_init=None if noise_init is None else tuple(noise_init.tolist()),
        steps_to_target=first,
        loss_sampling_var=sampling_var[:done].copy(),
        trajectory_loss=None if trajectory is None else trajectory[:done].copy(),
        # at its target on the very step it was to pause at: stopped there, not paused
        paused=status == Status.OK
        and done == last < cfg.steps
        and not (stop is not None and first is not None),
        trajectory_sampling_var=probe_var,
    )
    observer.on_end(result)
    return result
