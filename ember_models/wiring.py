"""Neural Circuit Policy wirings: which neuron may talk to which, and with what polarity.

A wiring is framework-free: NumPy int32 adjacency matrices with entries -1 (inhibitory),
+1 (excitatory) or 0 (no synapse).

- ``adjacency_matrix[src, dest]``          between the ``units`` neurons;
- ``sensory_adjacency_matrix[src, dest]``  from the ``input_dim`` inputs to the neurons
  (exists once ``build(input_dim)`` has been called: the sensory side depends on it).

Motor neurons are the first ``output_dim`` units, as in the reference library ncps. Every
generator here reproduces ncps 1.0.1's construction call for call (same random generator, same
draw order, including its quirks), so the same seed gives the same masks as ncps; the tests
hold us to that.

Layers: ``get_neurons_of_layer(l)`` lists the neurons of layer ``l``; a wired CfC runs the layers
in order (NCP: inter → command → motor), each layer reading the previous layer's new output.
"""
from __future__ import annotations

import numpy as np


class WiringError(ValueError):
    """A wiring that cannot be built as asked (says which parameter is wrong and why)."""


class Wiring:
    """A wiring given by explicit matrices (also the base class of the generated wirings).

    ``layers`` lists the neuron ids of each layer in execution order; default: one layer
    holding every neuron.
    """

    def __init__(self, units: int, output_dim: int | None = None, adjacency=None,
                 sensory_adjacency=None, layers=None):
        if int(units) < 1:
            raise WiringError(f"units must be >= 1, got {units}")
        self.units = int(units)
        self.output_dim = self.units if output_dim is None else int(output_dim)
        if not 1 <= self.output_dim <= self.units:
            raise WiringError(f"output_dim must be in 1..{self.units}, got {output_dim}")
        self.adjacency_matrix = np.zeros((self.units, self.units), dtype=np.int32)
        if adjacency is not None:
            self.adjacency_matrix = _polarity_matrix(adjacency, (self.units, self.units),
                                                     "adjacency")
        self.sensory_adjacency_matrix = None
        self.input_dim = None
        self._layers = None if layers is None else [list(map(int, l)) for l in layers]
        if self._layers is not None:
            flat = sorted(i for l in self._layers for i in l)
            if flat != list(range(self.units)):
                raise WiringError("layers must partition the neurons 0..units-1 exactly once")
        if sensory_adjacency is not None:
            s = np.asarray(sensory_adjacency)
            if s.ndim != 2:
                raise WiringError(f"sensory_adjacency must be 2-D, got shape {s.shape}")
            self.input_dim = int(s.shape[0])
            self.sensory_adjacency_matrix = _polarity_matrix(s, (s.shape[0], self.units),
                                                             "sensory_adjacency")

    # ---- structure ---------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return 1 if self._layers is None else len(self._layers)

    def get_neurons_of_layer(self, layer_id: int) -> list[int]:
        if self._layers is None:
            if layer_id != 0:
                raise WiringError(f"wiring has 1 layer, asked for layer {layer_id}")
            return list(range(self.units))
        return list(self._layers[layer_id])

    def get_type_of_neuron(self, neuron_id: int) -> str:
        return "motor" if neuron_id < self.output_dim else "inter"

    def is_built(self) -> bool:
        return self.input_dim is not None

    def build(self, input_dim: int) -> "Wiring":
        """Fix the number of inputs and draw the sensory synapses (once; same dim = no-op)."""
        input_dim = int(input_dim)
        if self.input_dim is not None:
            if self.input_dim != input_dim:
                raise WiringError(f"wiring was built for {self.input_dim} inputs, "
                                  f"now asked for {input_dim}")
            return self
        if input_dim < 1:
            raise WiringError(f"input_dim must be >= 1, got {input_dim}")
        self.input_dim = input_dim
        self.sensory_adjacency_matrix = np.zeros((input_dim, self.units), dtype=np.int32)
        self._build_sensory()
        return self

    def _build_sensory(self):
        """Explicit wirings have no sensory synapses unless given; generators override this."""

    def add_synapse(self, src: int, dest: int, polarity: int) -> None:
        if not 0 <= src < self.units or not 0 <= dest < self.units:
            raise WiringError(f"synapse {src}->{dest} outside 0..{self.units - 1}")
        if polarity not in (-1, 1):
            raise WiringError(f"polarity must be -1 or +1, got {polarity}")
        self.adjacency_matrix[src, dest] = polarity

    def add_sensory_synapse(self, src: int, dest: int, polarity: int) -> None:
        if self.input_dim is None:
            raise WiringError("cannot add sensory synapses before build(input_dim)")
        if not 0 <= src < self.input_dim or not 0 <= dest < self.units:
            raise WiringError(f"sensory synapse {src}->{dest} outside the "
                              f"{self.input_dim} inputs x {self.units} units")
        if polarity not in (-1, 1):
            raise WiringError(f"polarity must be -1 or +1, got {polarity}")
        self.sensory_adjacency_matrix[src, dest] = polarity

    @property
    def synapse_count(self) -> int:
        return int(np.abs(self.adjacency_matrix).sum())

    @property
    def sensory_synapse_count(self) -> int:
        return 0 if self.sensory_adjacency_matrix is None else \
            int(np.abs(self.sensory_adjacency_matrix).sum())

    # ---- config ------------------------------------------------------------------------
    def get_config(self) -> dict:
        """JSON-able description; ``wiring_from_config`` rebuilds the same wiring."""
        return {"class": "Wiring", "units": self.units, "output_dim": self.output_dim,
                "adjacency": self.adjacency_matrix.tolist(),
                "sensory_adjacency": None if self.sensory_adjacency_matrix is None
                else self.sensory_adjacency_matrix.tolist(),
                "layers": self._layers}

    def copy(self) -> "Wiring":
        """A fresh wiring with the same configuration (built to the same input_dim)."""
        w = wiring_from_config(self.get_config())
        if self.input_dim is not None and not w.is_built():
            w.build(self.input_dim)
        return w

    def __repr__(self):
        cfg = {k: v for k, v in self.get_config().items()
               if k not in ("class", "adjacency", "sensory_adjacency", "layers")}
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in cfg.items())})"


def _polarity_matrix(m, shape, what) -> np.ndarray:
    a = np.asarray(m)
    if a.shape != tuple(shape):
        raise WiringError(f"{what} must have shape {tuple(shape)}, got {a.shape}")
    if not np.isin(a, (-1, 0, 1)).all():
        raise WiringError(f"{what} entries must be -1, 0 or +1")
    return a.astype(np.int32)


class FullyConnected(Wiring):
    """Every neuron to every neuron (and every input to every neuron); polarity drawn
    +1 with probability 2/3, like ncps."""

    def __init__(self, units: int, output_dim: int | None = None, seed: int = 1111,
                 self_connections: bool = True):
        super().__init__(units, output_dim)
        self.seed, self.self_connections = int(seed), bool(self_connections)
        self._rng = np.random.default_rng(self.seed)
        for src in range(self.units):
            for dest in range(self.units):
                if src == dest and not self_connections:
                    continue
                self.add_synapse(src, dest, self._rng.choice([-1, 1, 1]))

    def _build_sensory(self):
        for src in range(self.input_dim):
            for dest in range(self.units):
                self.add_sensory_synapse(src, dest, self._rng.choice([-1, 1, 1]))

    def get_config(self):
        return {"class": "FullyConnected", "units": self.units, "output_dim": self.output_dim,
                "seed": self.seed, "self_connections": self.self_connections,
                "input_dim": self.input_dim}


class Random(Wiring):
    """A random sparse wiring: a fraction ``sparsity`` of the possible synapses is left out."""

    def __init__(self, units: int, output_dim: int | None = None, sparsity: float = 0.0,
                 seed: int = 1111):
        super().__init__(units, output_dim)
        if not 0.0 <= sparsity < 1.0:
            raise WiringError(f"sparsity must be in [0, 1), got {sparsity}")
        self.sparsity, self.seed = float(sparsity), int(seed)
        self._rng = np.random.default_rng(self.seed)
        n = int(np.round(units * units * (1 - sparsity)))
        pairs = [(s, d) for s in range(self.units) for d in range(self.units)]
        for src, dest in self._rng.choice(pairs, size=n, replace=False):
            self.add_synapse(src, dest, self._rng.choice([-1, 1, 1]))

    def _build_sensory(self):
        n = int(np.round(self.input_dim * self.units * (1 - self.sparsity)))
        pairs = [(s, d) for s in range(self.input_dim) for d in range(self.units)]
        for src, dest in self._rng.choice(pairs, size=n, replace=False):
            # ncps draws the polarity twice and keeps the second; we follow, so seeds agree
            self.add_sensory_synapse(src, dest, self._rng.choice([-1, 1, 1]))
            self.add_sensory_synapse(src, dest, self._rng.choice([-1, 1, 1]))

    def get_config(self):
        return {"class": "Random", "units": self.units, "output_dim": self.output_dim,
                "sparsity": self.sparsity, "seed": self.seed, "input_dim": self.input_dim}


class NCP(Wiring):
    """Neural Circuit Policy: sensory → inter → command → motor, with recurrent command
    synapses. Neuron ids: motor 0..m-1, then command, then inter (as ncps)."""

    def __init__(self, inter: int, command: int, motor: int, sensory_fanout: int,
                 inter_fanout: int, recurrent_command_synapses: int, motor_fanin: int,
                 seed: int = 22222):
        for name, v in (("inter", inter), ("command", command), ("motor", motor)):
            if int(v) < 1:
                raise WiringError(f"NCP needs at least 1 {name} neuron, got {v}")
        super().__init__(inter + command + motor, motor)
        self.n_inter, self.n_command, self.n_motor = int(inter), int(command), int(motor)
        self.sensory_fanout, self.inter_fanout = int(sensory_fanout), int(inter_fanout)
        self.recurrent_command_synapses = int(recurrent_command_synapses)
        self.motor_fanin, self.seed = int(motor_fanin), int(seed)
        if self.motor_fanin > self.n_command:
            raise WiringError(f"motor_fanin is {motor_fanin} but there are only "
                              f"{command} command neurons")
        if self.sensory_fanout > self.n_inter:
            raise WiringError(f"sensory_fanout is {sensory_fanout} but there are only "
                              f"{inter} inter neurons")
        if self.inter_fanout > self.n_command:
            raise WiringError(f"inter_fanout is {inter_fanout} but there are only "
                              f"{command} command neurons")
        self._rng = np.random.RandomState(self.seed)  # ncps uses the legacy generator here
        self.motor_neurons = list(range(0, motor))
        self.command_neurons = list(range(motor, motor + command))
        self.inter_neurons = list(range(motor + command, motor + command + inter))
        self._layers = [self.inter_neurons, self.command_neurons, self.motor_neurons]

    def get_type_of_neuron(self, neuron_id):
        if neuron_id < self.n_motor:
            return "motor"
        return "command" if neuron_id < self.n_motor + self.n_command else "inter"

    def _build_sensory(self):
        # NCP draws all its synapses at build time, in ncps' order
        rng, sensory = self._rng, list(range(self.input_dim))
        # sensory -> inter
        unreached = list(self.inter_neurons)
        for src in sensory:
            for dest in rng.choice(self.inter_neurons, size=self.sensory_fanout, replace=False):
                if dest in unreached:
                    unreached.remove(dest)
                self.add_sensory_synapse(src, dest, rng.choice([-1, 1]))
        fanin = int(np.clip(int(self.input_dim * self.sensory_fanout / self.n_inter),
                            1, self.input_dim))
        for dest in unreached:
            for src in rng.choice(sensory, size=fanin, replace=False):
                self.add_sensory_synapse(src, dest, rng.choice([-1, 1]))
        # inter -> command
        unreached = list(self.command_neurons)
        for src in self.inter_neurons:
            for dest in rng.choice(self.command_neurons, size=self.inter_fanout, replace=False):
                if dest in unreached:
                    unreached.remove(dest)
                self.add_synapse(src, dest, rng.choice([-1, 1]))
        fanin = int(np.clip(int(self.n_inter * self.inter_fanout / self.n_command),
                            1, self.n_command))
        for dest in unreached:
            for src in rng.choice(self.inter_neurons, size=fanin, replace=False):
                self.add_synapse(src, dest, rng.choice([-1, 1]))
        # recurrent command synapses
        for _ in range(self.recurrent_command_synapses):
            src = rng.choice(self.command_neurons)
            dest = rng.choice(self.command_neurons)
            self.add_synapse(src, dest, rng.choice([-1, 1]))
        # command -> motor
        unreached = list(self.command_neurons)
        for dest in self.motor_neurons:
            for src in rng.choice(self.command_neurons, size=self.motor_fanin, replace=False):
                if src in unreached:
                    unreached.remove(src)
                self.add_synapse(src, dest, rng.choice([-1, 1]))
        fanout = int(np.clip(int(self.n_motor * self.motor_fanin / self.n_command),
                             1, self.n_motor))
        for src in unreached:
            for dest in rng.choice(self.motor_neurons, size=fanout, replace=False):
                self.add_synapse(src, dest, rng.choice([-1, 1]))

    def get_config(self):
        return {"class": "NCP", "inter": self.n_inter, "command": self.n_command,
                "motor": self.n_motor, "sensory_fanout": self.sensory_fanout,
                "inter_fanout": self.inter_fanout,
                "recurrent_command_synapses": self.recurrent_command_synapses,
                "motor_fanin": self.motor_fanin, "seed": self.seed,
                "input_dim": self.input_dim}


class AutoNCP(NCP):
    """An NCP sized from the number of units and outputs (``sparsity`` in [0.1, 1.0]):
    40% of the non-motor neurons are command neurons, the rest inter neurons."""

    def __init__(self, units: int, output_size: int, sparsity: float = 0.5, seed: int = 22222):
        if output_size >= units - 2:
            raise WiringError(f"output_size must be less than units - 2 "
                              f"(given {units} units, {output_size} outputs)")
        if not 0.1 <= sparsity <= 1.0:
            raise WiringError(f"sparsity must be between 0.1 and 1.0, got {sparsity}")
        density = 1.0 - sparsity
        rest = units - output_size
        command = max(int(0.4 * rest), 1)
        inter = rest - command
        super().__init__(inter, command, output_size,
                         sensory_fanout=max(int(inter * density), 1),
                         inter_fanout=max(int(command * density), 1),
                         recurrent_command_synapses=max(int(command * density * 2), 1),
                         motor_fanin=max(int(command * density), 1), seed=seed)
        self.auto_units, self.output_size, self.sparsity = int(units), int(output_size), float(sparsity)

    def get_config(self):
        return {"class": "AutoNCP", "units": self.auto_units, "output_size": self.output_size,
                "sparsity": self.sparsity, "seed": self.seed, "input_dim": self.input_dim}


WIRINGS = {c.__name__: c for c in (Wiring, FullyConnected, Random, NCP, AutoNCP)}


def wiring_from_config(config: dict) -> Wiring:
    """Rebuild a wiring from ``get_config()`` output (built again if it had an input_dim)."""
    if not isinstance(config, dict) or config.get("class") not in WIRINGS:
        raise WiringError(f"not a wiring config: {config!r:.200} "
                          f"(expected a dict with 'class' in {sorted(WIRINGS)})")
    kwargs = {k: v for k, v in config.items() if k not in ("class", "input_dim")}
    wiring = WIRINGS[config["class"]](**kwargs)
    if config.get("input_dim") is not None and not wiring.is_built():
        wiring.build(config["input_dim"])
    return wiring


def as_wiring(spec, input_dim: int | None = None) -> Wiring:
    """A fresh wiring from a Wiring, a config dict, or an int (FullyConnected), built for
    ``input_dim`` when given. Always a copy: cells never share a mutable wiring."""
    if isinstance(spec, Wiring):
        wiring = spec.copy()
    elif isinstance(spec, dict):
        wiring = wiring_from_config(spec)
    elif isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        wiring = FullyConnected(int(spec))
    else:
        raise WiringError(f"expected a Wiring, a wiring config or a number of units, got "
                          f"{type(spec).__name__}")
    if input_dim is not None:
        wiring.build(input_dim)
    return wiring
