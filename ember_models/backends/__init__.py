"""One module per array backend. Each exposes ``BACKEND``, an object with the op set listed in
``ember_models.ops.OP_NAMES``. Backends are imported lazily, by name, so a missing optional
library (torch, mlx) only matters when that backend is asked for."""
