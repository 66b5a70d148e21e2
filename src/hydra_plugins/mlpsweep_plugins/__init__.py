"""mlpsweep's Hydra plugins: the joblib launcher and the zip-capable sweeper."""
