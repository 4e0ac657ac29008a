"""The files a local Kafka broker is made of: the Maven project that fetches its jars, the
log configuration, ``server.properties`` for a single-node KRaft broker on loopback, the
cluster id and the java command line. Kept apart from ``broker.py`` (which fetches, starts and
stops) because these are plain data with no process handling."""
from __future__ import annotations

import base64
import uuid
from pathlib import Path

# The SLF4J binding each major version logs through, and the log config it reads.
BINDINGS = {
    "3": ("org.slf4j", "slf4j-reload4j", "1.7.36"),
    "4": ("org.apache.logging.log4j", "log4j-slf4j-impl", "2.24.3"),
}

POM = """<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by stream_app/broker.py: only used to let Maven fetch the broker's jars. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>ember.local</groupId>
  <artifactId>kafka-broker-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{version}</version>
    </dependency>
    <dependency>
      <groupId>{bgroup}</groupId>
      <artifactId>{bartifact}</artifactId>
      <version>{bversion}</version>
    </dependency>
  </dependencies>
</project>
"""

LOG4J1 = """log4j.rootLogger={level}, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
"""

LOG4J2 = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <Console name="stdout" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Root level="{level}"><AppenderRef ref="stdout"/></Root>
  </Loggers>
</Configuration>
"""


def server_properties(data_dir: Path, port: int, controller_port: int) -> str:
    """Single-node KRaft on loopback, every replication setting at 1 (one broker)."""
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        # Fewer internal partitions than the default 50: faster first group/transaction request
        # on a small machine, and one broker gains nothing from more.
        "offsets.topic.num.partitions": "8",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "8",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        # Tests kill workers; a short minimum lets them use short session timeouts.
        "group.min.session.timeout.ms": "1000",
        # Topics are created explicitly (by the worker, the tests, the demo) with their
        # partition counts; auto-creation would silently make 1-partition source topics.
        "auto.create.topics.enable": "false",
        "log.retention.hours": "24",
        "log.segment.bytes": str(64 * 1024 * 1024),
    }
    return "".join(f"{k}={v}\n" for k, v in props.items())


def random_cluster_id() -> str:
    """A Kafka cluster id: URL-safe base64 of 16 random bytes (what StorageTool random-uuid prints)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):  # Kafka's own generator avoids these (they look like flags)
            return cid


def java_cmd(lib: Path, log_config: Path, major: str, main: str, *args: str) -> list[str]:
    log_prop = (
        f"-Dlog4j.configuration=file:{log_config}"
        if major == "3"
        else f"-Dlog4j2.configurationFile={log_config}"
    )
    return [
        "java",
        "-Xmx512m",
        "-Xms128m",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        log_prop,
        "-cp",
        f"{lib}/*",
        main,
        *args,
    ]
