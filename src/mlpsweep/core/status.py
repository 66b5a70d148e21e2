"""What became of a run, as one enum every layer shares (a StrEnum: it is written to
metrics.json and the tables as its plain string, and compares equal to it)."""

from enum import StrEnum


class Status(StrEnum):
    OK = "ok"  # trained to its last step (or its target)
    DIVERGED = "diverged"  # the loss became non-finite; stopped there (core.train)
    FAILED = "failed"  # the job raised; its error is in the record (app.execute)
    BUSY = "busy"  # another process holds the run's claim (app.task)
    DRY_RUN = "dry_run"  # planned, not trained: dry_run=true (app.task)
    INCOMPLETE = "incomplete"  # planned, no result yet (the report's runs table)
    CORRUPT = "corrupt"  # a record that fails validation (the report's runs table)

    @property
    def finished(self) -> bool:
        """A record with a history: the report compares these."""
        return self in FINISHED


FINISHED = (Status.OK, Status.DIVERGED)
