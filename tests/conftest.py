"""Shared fixtures. Kafka: one real broker per test session (see stream_app/broker.py).

``kafka_bootstrap`` reuses a running broker when ``EMBER_KAFKA_BOOTSTRAP`` is set (e.g. after
``eval $(scripts/kafka start | tail -1)``); otherwise it starts one from the cached Maven jars
(fetching them the first time: needs java and mvn) in a temporary directory and stops it when
the session ends. Tests that use it carry the ``kafka`` marker.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> str:
    from stream_app import broker, topics

    reuse = os.environ.get("EMBER_KAFKA_BOOTSTRAP")
    if reuse:
        broker.wait_until_ready(reuse, timeout_s=30)
        yield reuse
        return
    run_dir = tmp_path_factory.mktemp("kafka-run")
    state = broker.start(run_dir, version=os.environ.get("EMBER_KAFKA_VERSION", broker.DEFAULT_VERSION))
    try:
        # Make the broker create __consumer_offsets now, so the first test's consumer group
        # does not start with GroupCoordinatorNotAvailable.
        asyncio.run(topics.wait_for_coordinators(state.bootstrap, group_ids=["ember-warmup"]))
        yield state.bootstrap
    finally:
        broker.stop(run_dir)


@pytest.fixture
def kafka_topics(kafka_bootstrap: str):
    """``make(partitions=1, *suffixes) -> names``: fresh, uniquely named topics, ready to use."""
    from stream_app import topics

    created: list[str] = []

    def make(*suffixes: str, partitions: int = 1) -> list[str]:
        tag = uuid.uuid4().hex[:8]
        names = [f"t{tag}-{s}" for s in suffixes]
        asyncio.run(topics.ensure_topics(kafka_bootstrap, {n: partitions for n in names}))
        created.extend(names)
        return names

    yield make
    if created:
        asyncio.run(topics.delete_topics(kafka_bootstrap, created))
