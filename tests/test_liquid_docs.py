"""The examples in docs/liquid.md run as written (and their asserts hold)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from ember_models import backend as backend_mod
from ember_models.backend import set_backend

DOC = Path(__file__).resolve().parents[1] / "docs" / "liquid.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.fixture(autouse=True)
def restore_backend():
    previous = backend_mod._current
    yield
    if previous is not None:
        set_backend(previous.name)


def test_the_doc_has_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_doc_example_runs(index):
    set_backend("numpy")
    exec(compile(BLOCKS[index], f"{DOC.name} example {index + 1}", "exec"), {})
