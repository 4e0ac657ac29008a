"""json_events: JSON event messages into typed records; what it cannot take raises (the batch
then takes the per-event path, tests/kafka/test_batch_decode.py)."""
from __future__ import annotations

import pytest

from stream_app.json_events import DecodeError, decoder_for
from stream_app.schemas import EventSchema

SCHEMA = EventSchema("host.name", "ts", ("cpu.pct", "mem"), ("region",), "s")


def test_objects_and_arrays_decode_to_columns_under_any_field_names():
    dec = decoder_for(SCHEMA)
    one, single = dec.decode(b'{"host.name": "a", "ts": 5, "cpu.pct": 1.5, "mem": null, "x": [1]}')
    many, single_many = dec.decode(b'[{"host.name": 7, "ts": 6.5, "cpu.pct": 2, "region": "eu"},'
                                   b' {"host.name": "b", "ts": 7, "cpu.pct": 3.25, "mem": 4}]')
    assert single and not single_many
    rows = one + many
    assert dec.column(rows, "host.name") == ["a", 7, "b"]
    assert dec.column(rows, "ts") == [5, 6.5, 7]
    assert dec.column(rows, "cpu.pct") == [1.5, 2, 3.25]
    assert dec.column(rows, "mem") == [None, None, 4]          # null or absent: missing
    assert dec.column(rows, "region") == [None, "eu", None]
    assert decoder_for(SCHEMA) is dec                           # built once per schema


@pytest.mark.parametrize("raw", [
    b'{"ts": 5, "cpu.pct": 1}',                                 # no key
    b'{"host.name": "a", "cpu.pct": 1}',                        # no time
    b'{"host.name": true, "ts": 5}',                            # a bool is not a key
    b'{"host.name": "a", "ts": "2030-01-01T00:00:00"}',         # ISO time: the per-event path
    b'{"host.name": "a", "ts": 5, "cpu.pct": "12"}',            # text for a number
    b'{"host.name": "a", "ts": 5, "cpu.pct": NaN}',             # not JSON
    b'{"host.name": "a", "ts": 5, "cpu.pct": 123456789012345678901234}',   # beyond int64
    b'{"host.name": "a", "ts": 5, "region": 3}',                # a number for text
    b'[1, 2]', b'"a"', b'{"host.name": "\\ud800", "ts": 5}', b'\xff',
])
def test_what_it_cannot_take_raises(raw):
    with pytest.raises(DecodeError):
        decoder_for(SCHEMA).decode(raw)


def test_dead_letter_mode_requires_every_value():
    dec = decoder_for(EventSchema("k", "t", ("v",), (), "s", missing_values="dead_letter"))
    assert dec.column(dec.decode(b'{"k": "a", "t": 1, "v": 2}')[0], "v") == [2]
    for raw in (b'{"k": "a", "t": 1}', b'{"k": "a", "t": 1, "v": null}'):
        with pytest.raises(DecodeError):
            dec.decode(raw)

