"""Stream settings: defaults, EMBER_* environment, TOML file, clear errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from stream_app.settings import StreamSettings, StreamSettingsError


def test_environment_beats_toml_and_toml_beats_defaults(tmp_path, monkeypatch):
    cfg = tmp_path / "stream.toml"
    cfg.write_text('[stream]\nevents_topic = "in"\nbatch_size = 50\nprocessing_guarantee = "exactly_once"\n')
    monkeypatch.setenv("EMBER_BATCH_SIZE", "7")
    monkeypatch.setenv("EMBER_KAFKA_BOOTSTRAP", "kafka://h1:1;h2:2")
    s = StreamSettings.load(cfg)
    assert (s.events_topic, s.batch_size, s.exactly_once) == ("in", 7, True)
    assert s.kafka_bootstrap == "h1:1,h2:2" and s.broker_url == "kafka://h1:1;h2:2"
    assert s.alerts_topic == "ember-alerts"  # default


def test_unknown_toml_setting_is_named(tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text("batch_sise = 3\n")
    with pytest.raises(StreamSettingsError, match="batch_sise"):
        StreamSettings.load(cfg)


def test_sasl_needs_credentials_and_gives_client_kwargs(monkeypatch):
    with pytest.raises(ValidationError, match="sasl_username"):
        StreamSettings(security_protocol="SASL_PLAINTEXT")
    s = StreamSettings(security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256",
                       sasl_username="u", sasl_password="s3cr3t")
    kw = s.client_kwargs()
    assert kw["sasl_mechanism"] == "SCRAM-SHA-256" and kw["sasl_plain_password"] == "s3cr3t"
    assert "s3cr3t" not in repr(s)


@pytest.mark.parametrize("bad", [dict(kafka_bootstrap="nohost"), dict(alerts_topic="ember-events"),
                                 dict(processing_guarantee="twice"), dict(batch_size=0)])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValidationError):
        StreamSettings(**bad)


def test_topic_partitions_include_optional_scores():
    assert set(StreamSettings().topic_partitions()) == {"ember-events", "ember-alerts", "ember-events-dlq"}
    assert StreamSettings(scores_topic="sc", partitions=3).topic_partitions()["sc"] == 3
