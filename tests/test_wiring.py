"""Wirings: identical to ncps for the same seed (ncps is the reference), reproducible,
config round trip, and clear errors."""
from __future__ import annotations

import numpy as np
import pytest
from ncps import wirings as nw

from ember_models import wiring as ew


def _same(ours, theirs, input_dim):
    ours.build(input_dim)
    theirs.build(input_dim)
    np.testing.assert_array_equal(ours.adjacency_matrix, theirs.adjacency_matrix)
    np.testing.assert_array_equal(ours.sensory_adjacency_matrix, theirs.sensory_adjacency_matrix)
    assert ours.output_dim == theirs.output_dim
    assert ours.num_layers == theirs.num_layers
    for l in range(ours.num_layers):
        assert ours.get_neurons_of_layer(l) == list(theirs.get_neurons_of_layer(l))


@pytest.mark.parametrize("seed", [1, 7, 22222])
def test_every_wiring_equals_ncps_for_the_same_seed(seed):
    _same(ew.FullyConnected(7, 3, seed=seed), nw.FullyConnected(7, 3, erev_init_seed=seed), 4)
    _same(ew.FullyConnected(5, seed=seed, self_connections=False),
          nw.FullyConnected(5, erev_init_seed=seed, self_connections=False), 3)
    _same(ew.Random(9, 2, sparsity=0.4, seed=seed), nw.Random(9, 2, 0.4, seed), 5)
    _same(ew.NCP(6, 5, 3, 4, 3, 4, 2, seed=seed), nw.NCP(6, 5, 3, 4, 3, 4, 2, seed=seed), 7)
    _same(ew.AutoNCP(32, 4, seed=seed), nw.AutoNCP(32, 4, seed=seed), 16)
    _same(ew.AutoNCP(20, 3, sparsity=0.3, seed=seed), nw.AutoNCP(20, 3, 0.3, seed=seed), 5)


def test_autoncp_structure_and_polarity():
    w = ew.AutoNCP(32, 4, seed=3).build(16)
    inter, command, motor = (w.get_neurons_of_layer(l) for l in range(3))
    assert motor == [0, 1, 2, 3]                       # motor neurons come first, as in ncps
    assert (len(inter), len(command)) == (17, 11)
    assert set(np.unique(w.adjacency_matrix)) <= {-1, 0, 1}
    assert {-1, 1} <= set(np.unique(w.sensory_adjacency_matrix))
    # sensory synapses only reach inter neurons; motor neurons only hear command neurons
    assert not w.sensory_adjacency_matrix[:, command + motor].any()
    assert not w.adjacency_matrix[np.ix_(inter + motor, motor)].any()
    assert w.adjacency_matrix[np.ix_(command, motor)].any()
    assert w.get_type_of_neuron(0) == "motor" and w.get_type_of_neuron(20) == "inter"


def test_same_seed_same_masks_other_seed_other_masks():
    a, b, c = (ew.AutoNCP(24, 3, seed=s).build(8) for s in (5, 5, 6))
    np.testing.assert_array_equal(a.adjacency_matrix, b.adjacency_matrix)
    np.testing.assert_array_equal(a.sensory_adjacency_matrix, b.sensory_adjacency_matrix)
    assert (a.adjacency_matrix != c.adjacency_matrix).any()


@pytest.mark.parametrize("make", [lambda: ew.AutoNCP(16, 2, seed=9), lambda: ew.Random(6, 2, 0.5, 4),
                                  lambda: ew.FullyConnected(5, 2, seed=3),
                                  lambda: ew.NCP(4, 3, 2, 2, 2, 3, 2, seed=1)])
def test_config_round_trip_rebuilds_identical_masks(make):
    w = make().build(6)
    again = ew.wiring_from_config(w.get_config())
    np.testing.assert_array_equal(again.adjacency_matrix, w.adjacency_matrix)
    np.testing.assert_array_equal(again.sensory_adjacency_matrix, w.sensory_adjacency_matrix)
    explicit = ew.Wiring(**{k: v for k, v in ew.Wiring.get_config(w).items() if k != "class"})
    np.testing.assert_array_equal(explicit.sensory_adjacency_matrix, w.sensory_adjacency_matrix)
    assert explicit.num_layers == w.num_layers


def test_as_wiring_copies_so_cells_never_share_a_mutable_wiring():
    w = ew.AutoNCP(16, 2, seed=1)
    a = ew.as_wiring(w, 4)
    assert not w.is_built() and a.is_built() and a is not w
    with pytest.raises(ew.WiringError, match="built for 4 inputs"):
        a.build(5)


def test_bad_wirings_say_what_is_wrong():
    with pytest.raises(ew.WiringError, match="output_size must be less"):
        ew.AutoNCP(5, 4)
    with pytest.raises(ew.WiringError, match="motor_fanin"):
        ew.NCP(4, 2, 2, 2, 2, 1, 3)
    with pytest.raises(ew.WiringError, match="sparsity"):
        ew.Random(4, sparsity=1.0)
    with pytest.raises(ew.WiringError, match="polarity"):
        ew.Wiring(2).add_synapse(0, 1, 2)
    with pytest.raises(ew.WiringError, match="not a wiring config"):
        ew.wiring_from_config({"class": "Nope"})
