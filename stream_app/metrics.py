"""Prometheus metrics of a streaming worker (served read-only at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """One registry per worker app (so tests can build several apps in one process)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.events = Counter("ember_events", "Events received (valid or not)", registry=r)
        self.scored = Counter("ember_events_scored", "Events scored by the pipeline", registry=r)
        self.alerts = Counter("ember_alerts", "Alerts published", registry=r)
        self.dead_letters = Counter(
            "ember_dead_letters", "Events sent to the dead-letter topic", ["reason"], registry=r
        )
        self.replayed = Counter(
            "ember_events_replayed_skipped",
            "Redelivered events already in the stored key state (after a crash), skipped",
            registry=r,
        )
        self.late = Counter(
            "ember_events_late", "Events older than their key's latest, scored at that time", registry=r
        )
        self.restarted = Counter(
            "ember_keys_restarted", "Keys whose stored state did not fit the model (started fresh)",
            registry=r,
        )
        self.refetched = Counter(
            "ember_events_refetched",
            "Event messages read back from the broker: processed after the last state write "
            "(a restart or a takeover), or skipped by Faust", registry=r,
        )
        self.recovery_restarts = Counter(
            "ember_recovery_restarts",
            "Table recoveries whose stalled changelog reads were restarted (stream_app/recovery_watch.py)",
            registry=r,
        )
        self.duplicates = Counter(
            "ember_messages_duplicate_dropped",
            "Event messages Faust delivered again after this worker had processed them", registry=r,
        )
        self.batches = Counter("ember_batches", "Micro-batches processed", registry=r)
        self.compute_batches = Counter(
            "ember_compute_process_batches",
            "Micro-batches stepped in the compute process (a backlog)", registry=r)
        self.compute_restarts = Counter(
            "ember_compute_process_restarts",
            "Compute processes found dead and started again (their batch stepped in the worker)",
            registry=r)
        self.batch_seconds = Histogram(
            "ember_batch_seconds", "Wall time to process one micro-batch (decode to sends and state)",
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.delay_seconds = Histogram(
            "ember_batch_delay_seconds",
            "Age of a micro-batch's oldest message (its Kafka timestamp) when processing starts",
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.flush_seconds = Histogram(
            "ember_state_write_seconds", "Agent time per key-state write (changelog sends, local store)",
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.step_seconds = Histogram(
            "ember_pipeline_step_seconds", "Time in Pipeline.step per micro-batch",
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.lag = Gauge(
            "ember_consumer_lag", "Messages behind the partition's high watermark", ["partition"], registry=r
        )
        self.model = Gauge("ember_model_info", "The model version in use (value 1)", ["version"], registry=r)
        self.model_reloads = Counter("ember_model_reloads", "Hot model reloads", registry=r)
        self.model_reload_errors = Counter(
            "ember_model_reload_errors", "New model directories that failed to load", registry=r
        )
        self.last_batch = Gauge(
            "ember_last_batch_timestamp_seconds", "Wall clock time of the last processed batch", registry=r
        )

    def set_model(self, version: str) -> None:
        self.model.clear()
        self.model.labels(version=version).set(1)
