"""The pipeline a worker scores with, and its hot reload.

The model directory is watched by its ``manifest.json`` (written last, atomically, when a model is
saved): when the manifest's bytes change, the new model is loaded in a thread and, if it loads
and its ``model_version`` differs, swapped in between two micro-batches. A directory caught
half-written fails to load; the worker keeps the old model and tries again at the next poll.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """The model directory or the loader named in the settings cannot be used."""


def import_loader(path: str) -> Callable[[Path], Any]:
    """``"package.module:Class.method"`` → the callable it names."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ModelLoadError(f"pipeline_loader {path!r}: expected 'module:callable'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelLoadError(f"pipeline_loader {path!r}: cannot import {module_name} ({exc})") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ModelLoadError(f"pipeline_loader {path!r}: {module_name} has no {attr}") from None
    if not callable(obj):
        raise ModelLoadError(f"pipeline_loader {path!r} is not callable")
    return obj


def fingerprint(model_dir: Path) -> str:
    """What changes when a new model is saved into ``model_dir``."""
    manifest = model_dir / "manifest.json"
    try:
        return hashlib.sha256(manifest.read_bytes()).hexdigest()
    except FileNotFoundError:
        # No manifest: fall back to names, sizes and times of the files in it.
        h = hashlib.sha256()
        for p in sorted(model_dir.rglob("*")):
            if p.is_file():
                st = p.stat()
                h.update(f"{p.relative_to(model_dir)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
        return h.hexdigest()


class ModelHolder:
    def __init__(self, loader_path: str, model_dir: Path):
        self.loader = import_loader(loader_path)
        self.model_dir = Path(model_dir)
        self.pipeline: Any = None
        self.fingerprint: str | None = None

    def load(self) -> Any:
        if not self.model_dir.is_dir():
            raise ModelLoadError(
                f"model directory {self.model_dir} does not exist: train one first "
                "(ember train ...) or set EMBER_MODEL_DIR"
            )
        fp = fingerprint(self.model_dir)
        try:
            pipeline = self.loader(self.model_dir)
        except Exception as exc:
            raise ModelLoadError(f"loading the model in {self.model_dir} failed: {exc}") from exc
        for name in ("config", "model_version", "step"):
            if not hasattr(pipeline, name):
                raise ModelLoadError(f"the loaded pipeline has no {name!r} (see docs/contracts.md)")
        _warm_up(pipeline)
        self.pipeline, self.fingerprint = pipeline, fp
        return pipeline

    async def maybe_reload(self) -> bool:
        """Swap in a new model if the directory changed; True when the version changed."""
        fp = await asyncio.to_thread(fingerprint, self.model_dir)
        if fp == self.fingerprint:
            return False
        old = self.pipeline
        try:
            new = await asyncio.to_thread(self.loader, self.model_dir)
            await asyncio.to_thread(_warm_up, new)
        except Exception as exc:
            log.warning("model in %s changed but did not load (keeping %s): %s",
                        self.model_dir, old.model_version, exc)
            raise ModelLoadError(str(exc)) from exc
        self.fingerprint = fp
        if str(new.model_version) == str(old.model_version):
            return False
        self.pipeline = new
        log.warning("model reloaded: %s -> %s", old.model_version, new.model_version)
        return True


def _warm_up(pipeline: Any) -> None:
    """A pipeline that has ``warm_up`` (ember's: its compiled loops loaded before the first
    batch, not inside it) runs it; a custom loader's pipeline need not have one."""
    warm_up = getattr(pipeline, "warm_up", None)
    if callable(warm_up):
        warm_up()
