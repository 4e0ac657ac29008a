"""The TOML configuration: valid files load, and every kind of mistake names the file and field."""
from __future__ import annotations

import pytest

from ember_models.config import ConfigError, load_config, parse_config

HEAD = """
[data]
key_field = "host"
time_field = "ts"
value_fields = ["cpu", "mem"]
categorical_fields = ["region"]
"""


def write(tmp_path, text):
    p = tmp_path / "ember.toml"
    p.write_text(text, encoding="utf-8")
    return p


def error_of(tmp_path, text) -> ConfigError:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(p)
    assert str(info.value).startswith(f"{p}: "), str(info.value)
    assert info.value.source == str(p)
    return info.value


def test_valid_file_loads_with_defaults(tmp_path):
    cfg = load_config(write(tmp_path, HEAD))
    assert cfg.key_field == "host" and cfg.time_field == "ts"
    assert cfg.value_fields == ["cpu", "mem"] and cfg.categorical_fields == ["region"]
    kinds = [s.kind for s in cfg.features]
    assert "ewma" in kinds and "hashed_categorical" in kinds and "cyclical_time" in kinds
    assert cfg.source == str(tmp_path / "ember.toml")


@pytest.mark.parametrize("text, field, words", [
    (HEAD + '[[features]]\nkind = "ewmaa"\n', "features[0].kind", "unknown feature kind 'ewmaa'"),
    (HEAD + '[[features]]\nhalf_lives_s = [1]\n', "features[0].kind", "missing `kind`"),
    (HEAD + '[[features]]\nkind = "ewma"\nhalf_lives_s = [60, -5]\n',
     "features[0].half_lives_s[1]", "greater than or equal to 0.001"),
    (HEAD + '[[features]]\nkind = "ewma"\nhalf_lives_s = "60"\n', "features[0].half_lives_s",
     "valid list"),
    (HEAD + '[[features]]\nkind = "ewma"\nhalflife = 60\n', "features[0].halflife", "Extra inputs"),
    (HEAD + '[[features]]\nkind = "count"\n[[features]]\nkind = "delta"\nfields = ["disk"]\n',
     "features[1].fields[0]", "'disk' is not one of data.value_fields"),
    (HEAD + '[[features]]\nkind = "hashed_categorical"\nfields = ["cpu"]\n',
     "features[0].fields[0]", "not one of data.categorical_fields"),
    (HEAD + '[[features]]\nkind = "ewma"\n[[features]]\nkind = "ewma"\n', "features[1].name",
     "duplicate feature name"),
    (HEAD + '[[features]]\nkind = "rolling_count"\nsizes = [1]\n', "features[0].sizes[0]",
     "greater than or equal to 2"),
    (HEAD + '[[features]]\nkind = "cyclical_time"\nperiods = ["month"]\n', "features[0].periods[0]",
     "'day' or 'week'"),
    ('[data]\ntime_field = "ts"\nvalue_fields = ["cpu"]\n', "data.key_field", "Field required"),
    ('[data]\nkey_field = "h"\ntime_field = "ts"\nvalue_fields = "cpu"\n', "data.value_fields",
     "valid list"),
    ('[data]\nkey_field = "h"\ntime_field = "ts"\nvalue_fields = []\n', "data.value_fields",
     "at least 1"),
    ('[data]\nkey_field = "h"\ntime_field = "h"\nvalue_fields = ["cpu"]\n', "data.time_field",
     "already used as key_field"),
    (HEAD + '[modle]\nx = 1\n', "modle", "Extra inputs"),
])
def test_errors_name_the_file_and_the_field(tmp_path, text, field, words):
    err = error_of(tmp_path, text)
    assert err.field == field, str(err)
    assert f": {field}: " in str(err) and words in str(err), str(err)


def test_hashed_categorical_without_categorical_fields(tmp_path):
    err = error_of(tmp_path, '[data]\nkey_field = "h"\ntime_field = "t"\nvalue_fields = ["x"]\n'
                             '[[features]]\nkind = "hashed_categorical"\n')
    assert err.field == "features[0].kind" and "categorical_fields" in str(err)


def test_bad_toml_and_missing_file(tmp_path):
    err = error_of(tmp_path, "[data\n")
    assert "invalid TOML" in str(err) and "line 1" in str(err)
    with pytest.raises(ConfigError, match="nope.toml: cannot read"):
        load_config(tmp_path / "nope.toml")


def test_validate_section_names_file_and_field(tmp_path):
    from pydantic import BaseModel, PositiveInt

    class Model(BaseModel):
        hidden: PositiveInt = 8

    cfg = load_config(write(tmp_path, HEAD + "[model]\nhidden = 0\n"))
    with pytest.raises(ConfigError, match=r"ember.toml: model.hidden: Input should be greater than 0"):
        cfg.validate_section("model", Model)
    assert parse_config(HEAD).validate_section("model", Model).hidden == 8
