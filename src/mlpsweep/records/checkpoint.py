"""Mid-run checkpoints: runs/<run_id>/checkpoint-<step>.npz, a core TrainState as bytes.

    b"mlpsweep checkpoint 1\\n" + sha256(payload) in hex + b"\\n" + payload

The payload is an .npz (no pickles: nothing in it can run code) holding the state's
arrays and one JSON entry for the rest (the tree's shape, scalars, generator states).
Each file is written atomically; the newest two are kept, so a checkpoint that fails its
checksum (a torn write, a damaged disk) falls back to the one before it, or to step 0,
and the caller says so. They are removed once the run's final record lands.
"""

import io
import json
import re
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from mlpsweep.core.observe import History, TrainState
from mlpsweep.records.files import PathLike, guarded_read, guarded_write, sha256
from mlpsweep.records.run import record_root

MAGIC = b"mlpsweep checkpoint 1\n"
NAME = re.compile(r"checkpoint-(\d{9})\.npz")
KEEP = 2  # the newest and the one before it


def checkpoint_name(step: int) -> str:
    return f"checkpoint-{step:09d}.npz"


def encode(state: TrainState, run_id: str) -> bytes:
    """The file's bytes for `state` of run `run_id`."""
    arrays: dict[str, np.ndarray] = {}

    def pack(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            key = f"a{len(arrays)}"
            arrays[key] = value
            return {"__array__": key}
        if isinstance(value, dict):
            return {"__dict__": [[k, pack(v)] for k, v in value.items()]}
        if isinstance(value, (list, tuple)):
            return [pack(v) for v in value]
        if isinstance(value, np.generic):
            return value.item()
        return value

    h = state.history
    tree = {
        "run_id": run_id,
        "step": state.step,
        "params": pack(state.params),
        "optimizer": pack(state.optimizer),
        "streams": pack(state.streams),
        "fingerprint": pack(state.fingerprint),
        "history": pack({f: getattr(h, f) for f in History.__dataclass_fields__}),
    }
    meta = json.dumps(tree).encode()
    buffer = io.BytesIO()
    arrays["meta"] = np.frombuffer(meta, np.uint8)  # (keys a0, a1, ...: never "meta")
    np.savez(buffer, **arrays)  # type: ignore[arg-type]  # (numpy's stub: allow_pickle)
    payload = buffer.getvalue()
    return MAGIC + sha256(payload).encode() + b"\n" + payload


class Unreadable(ValueError):
    """A checkpoint that is not one, or not this run's: ignored."""


def decode(data: bytes, run_id: str) -> TrainState:
    """The TrainState in `data`, verified (Unreadable when it fails its checksum)."""
    head = len(MAGIC) + 65
    if not data.startswith(MAGIC) or data[head - 1 : head] != b"\n":
        raise Unreadable("not a checkpoint")
    payload = data[head:]
    if sha256(payload) != data[len(MAGIC) : head - 1].decode("ascii", "replace"):
        raise Unreadable("fails its checksum")
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        tree = json.loads(arrays.pop("meta").tobytes())

        def unpack(value: Any) -> Any:
            if isinstance(value, dict) and "__array__" in value:
                return arrays[value["__array__"]]
            if isinstance(value, dict):
                return {k: unpack(v) for k, v in value["__dict__"]}
            if isinstance(value, list):
                return [unpack(v) for v in value]
            return value

        if tree["run_id"] != run_id:
            raise Unreadable(f"is run {tree['run_id']}'s")
        return TrainState(
            step=int(tree["step"]),
            params=unpack(tree["params"]),
            optimizer=unpack(tree["optimizer"]),
            streams=unpack(tree["streams"]),
            history=History(**unpack(tree["history"])),
            fingerprint=unpack(tree["fingerprint"]),
        )
    except (ValueError, KeyError, TypeError, OSError) as e:
        raise Unreadable(f"cannot be decoded ({type(e).__name__})") from None


def write_checkpoint(run_dir: PathLike, state: TrainState, run_id: str) -> Path:
    """Write `state` (the guarded write: never through a link below the sweep's folder);
    keep it and the one before, remove older ones."""
    run_dir = Path(run_dir)
    path = run_dir / checkpoint_name(state.step)
    # No fsync: a checkpoint torn by a power cut fails its checksum, and the one before
    # it is used; a kill cannot tear it (the rename is atomic).
    guarded_write(path, encode(state, run_id), root=record_root(run_dir), durable=False)
    for old in checkpoints(run_dir)[KEEP:]:
        old.unlink(missing_ok=True)
    return path


def checkpoints(run_dir: PathLike) -> list[Path]:
    """The run's checkpoint files, newest first (no symbolic links)."""
    run_dir = Path(run_dir)
    if run_dir.is_symlink() or not run_dir.is_dir():
        return []
    found = [p for p in run_dir.iterdir() if NAME.fullmatch(p.name) and not p.is_symlink()]
    return sorted(found, key=lambda p: p.name, reverse=True)


class Resumed(NamedTuple):
    """The newest checkpoint that holds (None: start at 0), and what was skipped, why."""

    state: TrainState | None
    skipped: list[str]


def read_checkpoint(run_dir: PathLike, run_id: str, at_most: int | None = None) -> Resumed:
    """The newest valid checkpoint of the run (at most `at_most` steps in), verified."""
    skipped: list[str] = []
    for path in checkpoints(run_dir):
        step = int(NAME.fullmatch(path.name).group(1))  # type: ignore[union-attr]
        if at_most is not None and step > at_most:
            continue
        try:
            state = decode(guarded_read(path, "checkpoint", record_root(run_dir)), run_id)
            if state.step != step:
                raise Unreadable(f"holds step {state.step}, not {step}")
            return Resumed(state, skipped)
        except (OSError, Unreadable) as e:
            skipped.append(f"{path.name}: {getattr(e, 'strerror', None) or e}")
    return Resumed(None, skipped)


def remove_checkpoints(run_dir: PathLike) -> None:
    """Remove the run's checkpoint files; anything else by their name (a folder, a
    FIFO) is left where it is: it was never read as a checkpoint either."""
    for path in checkpoints(run_dir):
        if path.is_file():
            path.unlink(missing_ok=True)
