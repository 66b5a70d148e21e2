"""mlpsweep: sweep MLP training settings with Hydra, in parallel, and report on them."""

__version__ = "0.1.0"
