"""The Hydra side of mlpsweep: config schema, fast job composition, job execution,
result storage. The training core (mlpsweep.core) knows nothing of any of it."""
