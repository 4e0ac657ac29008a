"""The errors a backfill raises: each names what is wrong and where, and none loses data.

A shard is only recorded as done after its sink write succeeded, so any of these errors
leaves the run resumable: fix the cause and run the same command again.
"""

from __future__ import annotations


class BackfillError(RuntimeError):
    """Base class of every backfill error."""


class SourceError(BackfillError):
    """The source cannot be read as asked: a missing table, file or column, or a wrong type."""


class SessionExpiredError(BackfillError):
    """A BigQuery Storage Read session expired (or the server no longer knows its stream).

    The runner retries the whole shard with a fresh session: rows already read from the old
    session are discarded, so nothing is read twice or lost."""


class SinkError(BackfillError):
    """Scores could not be written where asked."""


class PipelineError(BackfillError):
    """The pipeline failed on a shard, or returned something other than the contract says."""
