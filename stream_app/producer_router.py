"""How the worker's agent sends: through the right producer, and (exactly-once) without a
transaction commit in the middle of a batch. See ``stream_app.app`` for why."""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

import faust

from .settings import StreamSettings


class CommitGuard:
    """Exactly-once: no transaction commit in the middle of a batch.

    Faust commits on a timer, from another task. A batch's sends (outputs, then changelog) yield
    to the event loop between them, so a commit could land between a batch's outputs and its
    state change: the outputs would commit, the state change would go with the next
    transaction, and a crash would then rescore the batch from the old state (duplicates — found
    by the SIGKILL test). Every commit path goes through ``force_commit``; it is wrapped to take
    the same lock the agent holds while it sends one batch. (A batch's offsets may still commit
    one transaction later than its state: the stored state's offset makes the replay skip it.)
    """

    def __init__(self, consumer: Any):
        self.lock = asyncio.Lock()
        original = consumer.force_commit

        async def force_commit(*args: Any, **kwargs: Any) -> Any:
            async with self.lock:
                return await original(*args, **kwargs)

        consumer.force_commit = force_commit


class ProducerRouter:
    """Sends outputs through the right producer: in exactly-once mode, the transactional producer
    of the *source* partition (Faust's id format ``{app id}-{group}-{partition}``)."""

    def __init__(self, app: faust.App, settings: StreamSettings, partitions: int, table: Any):
        self.app = app
        self.settings = settings
        self.partitions = partitions
        self.changelog_topic = table.changelog_topic.get_topic_name()
        # Which worker produced an output (host:pid), for operators tracing a record.
        self.headers = [("ember-worker", f"{socket.gethostname()}:{os.getpid()}".encode())]

    def persisted(self, table: Any, metadata: Any) -> None:
        """Record a changelog offset the local store holds (the value was just written there),
        so the next recovery of the partition (a restart on the same datadir, a rebalance that
        leaves it here) reads the changelog only from there.

        Exactly-once too, at once: Faust's send callback defers it to the commit of the
        partition (``persist_offset_on_commit``) but files it under the changelog partition and
        looks it up under the source partition, so it never landed (faust-streaming 0.15.3), and
        every rebalance re-read each partition it kept from its previous recovery on: all the
        state writes since, one per key and batch in that mode. Deferring buys nothing here:
        an exactly-once worker drops its local tables at every start (``stream_app.app``), so
        the claim "the local store holds the changelog up to here" only has to hold while the
        process runs, where it is true as soon as the value is written. A transaction that
        aborted under a running worker would show at the next recovery as a stored offset past
        the changelog's committed end: Faust stops there with a ConsistencyError rather than
        keep a state that never became true."""
        table.data.set_persisted_offset(metadata.topic_partition, metadata.offset)

    def transactional_id(self, source_partition: int) -> str | None:
        if not self.settings.exactly_once:
            return None
        group = self.app.assignor.group_for_topic(self.settings.events_topic)
        return f"{self.app.conf.id}-{group}-{source_partition}"

    async def send(self, topic: str, key: bytes | None, value: bytes, source_partition: int) -> asyncio.Future:
        # Outputs are co-partitioned with the events: the same partition number as their source,
        # which for keyed events is also where Kafka's partitioner would put the key.
        return await self.app.producer.send(
            topic, key, value, source_partition, None, self.headers,
            transactional_id=self.transactional_id(source_partition),
        )
