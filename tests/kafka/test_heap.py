"""stream_app.heap: objects alive at a freeze are out of the collector's way; a refreeze
(after a hot reload) collects the cycles that died since."""

import gc
import weakref

import pytest

from stream_app import heap


class Node:
    def __init__(self):
        self.me = self  # a reference cycle: only the cyclic collector frees it


@pytest.fixture
def unfrozen():
    yield
    gc.unfreeze()  # the rest of the test session collects as usual


def test_freeze_exempts_live_objects_and_refreeze_collects_dead_cycles(unfrozen):
    node = Node()
    alive = weakref.ref(node)
    heap.freeze()
    assert gc.get_freeze_count() > 0
    del node
    gc.collect()
    assert alive() is not None  # frozen: a full collection does not walk it
    heap.refreeze()
    assert alive() is None      # unfrozen, collected, the rest frozen again
    assert gc.get_freeze_count() > 0


def test_objects_made_after_a_freeze_are_collected(unfrozen):
    heap.freeze()
    node = Node()
    alive = weakref.ref(node)
    del node
    gc.collect()
    assert alive() is None
