"""The launcher's own job failures: a job it never ran, or lost with its worker. A sweeper
reports them (the run's record says what became of it) rather than raising them."""


class LaunchFailure(RuntimeError):
    """A job that failed in the launcher, not in the task."""


class JobNotRun(LaunchFailure):
    """The job was never started (fail_fast stopped the launch first)."""


class WorkerLost(LaunchFailure):
    """The job's worker process died while running it."""
