"""Streaming worker settings: environment variables (prefix ``EMBER_``) over an optional TOML file.

Precedence, highest first: keyword arguments, ``EMBER_*`` environment variables, the TOML file
named by ``EMBER_STREAM_CONFIG`` (or passed to :meth:`StreamSettings.load`), the defaults below.
The TOML file holds the same names at the top level or under a ``[stream]`` table::

    [stream]
    kafka_bootstrap = "broker-1:9092,broker-2:9092"
    events_topic = "ember-events"
    processing_guarantee = "exactly_once"
    batch_size = 1000

Every field's environment name is ``EMBER_`` + its upper-cased name, e.g.
``EMBER_KAFKA_BOOTSTRAP``, ``EMBER_PROCESSING_GUARANTEE``, ``EMBER_SASL_PASSWORD``.
"""

from __future__ import annotations

import os
import ssl
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

CONFIG_ENV = "EMBER_STREAM_CONFIG"


class StreamSettingsError(ValueError):
    """Settings that cannot work together; the message names the setting."""


class _TomlSource(PydanticBaseSettingsSource):
    """Reads the TOML file (top level, or its ``[stream]`` table)."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None):
        super().__init__(settings_cls)
        self.path = path

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ returns the whole mapping

    def __call__(self) -> dict[str, Any]:
        if self.path is None:
            return {}
        try:
            data = tomllib.loads(Path(self.path).read_text())
        except FileNotFoundError:
            raise StreamSettingsError(f"{CONFIG_ENV}: no such settings file {self.path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise StreamSettingsError(f"{self.path}: not valid TOML ({exc})") from None
        section = data.get("stream", data)
        if not isinstance(section, dict):
            raise StreamSettingsError(f"{self.path}: [stream] must be a table")
        known = set(self.settings_cls.model_fields)
        unknown = sorted(set(section) - known - {"stream"})
        if unknown:
            raise StreamSettingsError(f"{self.path}: unknown stream setting(s) {', '.join(unknown)}")
        return {k: v for k, v in section.items() if k in known}


class StreamSettings(BaseSettings):
    """Everything a streaming worker needs to know; see the module docstring for sources."""

    model_config = SettingsConfigDict(env_prefix="EMBER_", extra="ignore", validate_default=True)

    # --- broker and security ---------------------------------------------------------------
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="host:port[,host:port...]")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None

    # --- topics ------------------------------------------------------------------------------
    app_id: str = Field("ember", description="Faust app id = consumer group id")
    events_topic: str = "ember-events"
    alerts_topic: str = "ember-alerts"
    scores_topic: str | None = Field(None, description="every score, when set")
    dead_letter_topic: str = "ember-events-dlq"
    partitions: int = Field(4, ge=1, description="partitions of topics the worker creates")
    replication_factor: int = Field(1, ge=1, description="of topics the worker creates, changelog included")
    create_topics: bool = Field(True, description="create missing topics at start")
    partition_check: Literal["murmur2", "off"] = Field(
        "murmur2",
        description="dead-letter events whose key is not on the partition Kafka's default "
        "(murmur2) partitioner gives it; 'off' if producers partition keys some other consistent way",
    )

    # --- model -------------------------------------------------------------------------------
    model_dir: Path = Path("model")
    pipeline_loader: str = Field(
        "ember_models.pipeline:Pipeline.load",
        description="import path of a callable(model_dir) -> pipeline",
    )
    model_poll_s: float = Field(5.0, ge=0, description="hot-reload poll period; 0 = off")

    # --- processing ---------------------------------------------------------------------------
    processing_guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"
    batch_size: int = Field(1000, ge=1, description="messages per micro-batch, at most")
    batch_max_wait_s: float = Field(
        0.01, gt=0, description="wait at most this for a full batch (up to 5x this while the "
        "broker holds more of the batch's partitions and messages keep coming: docs/streaming.md)")
    max_payload_bytes: int = Field(1_048_576, ge=64, description="larger messages are dead letters")
    missing_values: Literal["impute", "dead_letter"] = Field(
        "impute",
        description="an absent or null value field: passed on as missing (the pipeline imputes "
        "it, as for event files) or sent to the dead-letter topic",
    )
    max_out_of_order_s: float = Field(
        300.0, ge=0, description="a key's event older than its latest by more is a dead letter"
    )
    max_future_s: float = Field(
        86_400.0, gt=0, description="an event time further than this past the wall clock is a dead letter"
    )
    commit_interval_s: float = Field(1.0, gt=0)
    state_flush_interval_s: float = Field(
        1.0, ge=0, description="at-least-once: write key states to the table at most this often "
        "(0 = after every batch); exactly-once writes them with every batch"
    )
    producer_linger_ms: int = Field(1, ge=0)
    producer_max_batch_bytes: int = Field(
        524_288, ge=16_384, le=1_000_000,
        description="bytes per produce batch and partition (a batch is one broker record: at most "
        "the broker's message.max.bytes, ~1 MB by default). aiokafka's 16 KB default holds two "
        "~7 KB key states, and a send to a partition whose batch is full waits for the broker: "
        "a 32-state write took 16 round trips"
    )
    session_timeout_s: float = Field(10.0, gt=0)
    heartbeat_interval_s: float = Field(1.0, gt=0)

    # --- worker --------------------------------------------------------------------------------
    compute_threads: int = Field(
        1, ge=1, description="BLAS/OpenMP threads of the model's math in one worker (a worker is "
        "one event loop: scale with workers; more threads spin against the broker and Faust)"
    )
    compute_process: Literal["auto", "on", "off"] = Field(
        "auto", description="run the model step in a child process beside the event loop, one "
        "batch ahead (stream_app.compute_process); 'auto': when the worker may use 2+ cores"
    )
    datadir: Path = Path("var/ember-worker")
    web_host: str = "127.0.0.1"
    web_port: int = Field(6066, ge=0, le=65535)
    log_level: str = "WARNING"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = os.environ.get(CONFIG_ENV)
        return (init_settings, env_settings, _TomlSource(settings_cls, Path(path) if path else None))

    @classmethod
    def load(cls, toml_path: str | Path | None = None, **overrides: Any) -> "StreamSettings":
        """Settings from ``toml_path`` (if given), the environment, and ``overrides``."""
        if toml_path is None:
            return cls(**overrides)
        saved = os.environ.get(CONFIG_ENV)
        os.environ[CONFIG_ENV] = str(toml_path)
        try:
            return cls(**overrides)
        finally:
            if saved is None:
                os.environ.pop(CONFIG_ENV, None)
            else:
                os.environ[CONFIG_ENV] = saved

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_hosts(cls, v: str) -> str:
        v = v.removeprefix("kafka://")
        hosts = [h.strip() for h in v.replace(";", ",").split(",") if h.strip()]
        for h in hosts:
            host, _, port = h.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"kafka_bootstrap: {h!r} is not host:port")
        if not hosts:
            raise ValueError("kafka_bootstrap is empty")
        return ",".join(hosts)

    @model_validator(mode="after")
    def _consistent(self) -> "StreamSettings":
        if self.security_protocol.startswith("SASL") and (
            not self.sasl_username or self.sasl_password is None
        ):
            raise ValueError(
                f"security_protocol={self.security_protocol} needs sasl_username and sasl_password "
                "(EMBER_SASL_USERNAME / EMBER_SASL_PASSWORD)"
            )
        topics = [self.events_topic, self.alerts_topic, self.dead_letter_topic, self.scores_topic]
        named = [t for t in topics if t]
        if len(set(named)) != len(named):
            raise ValueError(f"topic names must differ: {named}")
        if self.heartbeat_interval_s * 3 > self.session_timeout_s:
            raise ValueError("heartbeat_interval_s must be at most a third of session_timeout_s")
        return self

    # --- derived ------------------------------------------------------------------------------

    @property
    def exactly_once(self) -> bool:
        return self.processing_guarantee == "exactly_once"

    @property
    def broker_url(self) -> str:
        """Faust's form of the bootstrap list."""
        return "kafka://" + ";".join(self.kafka_bootstrap.split(","))

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.security_protocol not in ("SSL", "SASL_SSL"):
            return None
        ctx = ssl.create_default_context(cafile=str(self.ssl_cafile) if self.ssl_cafile else None)
        if self.ssl_certfile:
            ctx.load_cert_chain(str(self.ssl_certfile), str(self.ssl_keyfile) if self.ssl_keyfile else None)
        return ctx

    def client_kwargs(self) -> dict[str, Any]:
        """Security keyword arguments for aiokafka clients (admin, producer, consumer)."""
        kw: dict[str, Any] = {"security_protocol": self.security_protocol}
        ctx = self.ssl_context()
        if ctx is not None:
            kw["ssl_context"] = ctx
        if self.security_protocol.startswith("SASL"):
            kw["sasl_mechanism"] = self.sasl_mechanism
            kw["sasl_plain_username"] = self.sasl_username
            kw["sasl_plain_password"] = self.sasl_password.get_secret_value() if self.sasl_password else None
        return kw

    def faust_credentials(self) -> Any:
        """Faust's ``broker_credentials`` for the configured security protocol (None = plaintext)."""
        import faust

        if self.security_protocol == "PLAINTEXT":
            return None
        if self.security_protocol == "SSL":
            return faust.SSLCredentials(self.ssl_context())
        return faust.SASLCredentials(
            username=self.sasl_username,
            password=self.sasl_password.get_secret_value() if self.sasl_password else None,
            mechanism=self.sasl_mechanism,
            ssl_context=self.ssl_context(),
        )

    def topic_partitions(self) -> dict[str, int]:
        """The topics a worker needs, with the partition count to create them with."""
        names = [self.events_topic, self.alerts_topic, self.dead_letter_topic, self.scores_topic]
        return {n: self.partitions for n in names if n}
