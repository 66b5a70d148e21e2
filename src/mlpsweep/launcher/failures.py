"""The launcher's own job failures: a job it never ran, or lost with its worker. A sweeper
reports them (the run's record says what became of it) rather than raising them. And an
engine's: one that cannot start, or that can run no more jobs."""


class LaunchFailure(RuntimeError):
    """A job that failed in the launcher, not in the task."""


class JobNotRun(LaunchFailure):
    """The job was never started (fail_fast stopped the launch first)."""


class WorkerLost(LaunchFailure):
    """The job's worker process died while running it."""


class EngineError(RuntimeError):
    """An engine that cannot start (one line)."""


class EngineLost(RuntimeError):
    """An engine that can run no more jobs (one line: what was waited for, how long)."""


def failed_return(overrides, error):
    """The JobReturn of a job the launcher failed with `error`."""
    from hydra.core.utils import JobReturn, JobStatus

    ret = JobReturn(overrides=list(overrides), status=JobStatus.FAILED)
    ret.return_value = error
    return ret
