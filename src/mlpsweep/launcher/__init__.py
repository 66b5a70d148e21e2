"""hydra/launcher=mlpsweep: a general, fast Hydra launcher on joblib (any backend, Dask
included). It runs whatever task function Hydra gives it, one `run_job` per job, as
Hydra specifies; nothing in it knows about training. The plugin that Hydra discovers is
src/hydra_plugins/mlpsweep_plugins/launcher.py."""
