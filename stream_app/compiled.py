"""The hot modules compiled with Cython, and the guard that never lets a stale build run.

Why (measured, docs/PERFORMANCE.md item 30): the worker's CPU per event is pure-Python work
spread over the tag engine, the state updater, scoring, the Redis projection and the
business counters, with no single hot spot left. Compiled with Cython as they are (no
``cdef``, annotations ignored, so they behave exactly as the interpreted sources), the same
modules run ~1.5x faster in the tag engine and ~1.25x over the agent's steps in-process.

How:

* ``stream-app compile`` (``make compile``; ``make install`` runs it) cythonizes
  :data:`MODULES` in place: an extension module lands next to each ``.py``, and Python's import
  prefers it. Each compiled source's SHA-256 goes into ``stream_app/_compiled.json``; only
  modules whose source changed since are compiled again.
* ``import stream_app`` installs :func:`install_guard`: a listed module whose ``.py`` no longer
  matches the digest it was compiled from is loaded from its source instead (with a warning to
  run ``stream-app compile``), so an edit takes effect at once and a stale build never runs.
  ``STREAM_APP_PURE_PYTHON=1`` loads every listed module from source (profiling with py-spy,
  which does not see into compiled frames; doctests, which read the sources).
* Without a C compiler or Cython, nothing is compiled and everything runs from source.

Example (a module that was never compiled is simply not guarded):
    >>> guard = SourceGuard({"pkg.mod": "/nowhere/mod.py"})
    >>> guard.find_spec("pkg.other", None) is None
    True
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent
MANIFEST = PACKAGE_DIR / "_compiled.json"
PURE_ENV = "STREAM_APP_PURE_PYTHON"

#: the modules on the worker's per-event path (pure Python with no Faust import: agents.py and
#: the Faust wiring stay interpreted)
MODULES: tuple[str, ...] = (
    "stream_app.events", "stream_app.clock", "stream_app.due_index", "stream_app.metrics",
    "stream_app.security.pii",
    "stream_app.rules.engine", "stream_app.rules.model", "stream_app.rules.compiler",
    "stream_app.state.record", "stream_app.state.query", "stream_app.state.buckets",
    "stream_app.state.requirements",
    "stream_app.scoring.scorer", "stream_app.scoring.features", "stream_app.scoring.points",
    "stream_app.scoring.registry", "stream_app.scoring.gate", "stream_app.scoring.models",
    "stream_app.alerts.policy",
    "stream_app.serving.projection", "stream_app.serving.keys", "stream_app.serving.redis_batch",
    "stream_app.business.aggregator", "stream_app.business.merge", "stream_app.business.series",
    "stream_app.anomaly.monitor", "stream_app.anomaly.seasonal", "stream_app.anomaly.alarm",
    "stream_app.anomaly.transform",
)

#: Cython settings: the sources compile as plain Python (annotations are not C types), and
#: functions stay introspectable (signatures, ``functools.wraps``, pickling by name)
DIRECTIVES = ("language_level=3", "annotation_typing=False", "binding=True")


def source_path(module: str, root: Path = PACKAGE_DIR) -> Path:
    """The ``.py`` file of ``module`` (``stream_app.rules.engine`` -> ``rules/engine.py``)."""
    parts = module.split(".")[1:]
    return root.joinpath(*parts).with_suffix(".py")


def extension_path(module: str, root: Path = PACKAGE_DIR) -> Path | None:
    """The compiled extension next to the module's source, if there is one."""
    src = source_path(module, root)
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = src.with_name(src.stem + suffix)
        if candidate.exists():
            return candidate
    return None


def digest(path: Path) -> str:
    """SHA-256 of a file's bytes (what a compiled module was built from)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_manifest(path: Path = MANIFEST) -> dict[str, str]:
    """Module -> digest of the source each extension was compiled from ({} if none)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if data.get("python") != sys.implementation.cache_tag:
        return {}
    return dict(data.get("modules") or {})


def status(modules: Iterable[str] = MODULES, root: Path = PACKAGE_DIR,
           manifest: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each module's state: ``compiled`` (its extension matches the source), ``stale``
    (an extension built from another version of the source) or ``source`` (no extension)."""
    built = load_manifest(root / MANIFEST.name) if manifest is None else manifest
    out = {}
    for name in modules:
        if extension_path(name, root) is None:
            out[name] = "source"
        else:
            src = source_path(name, root)
            out[name] = "compiled" if built.get(name) == digest(src) else "stale"
    return out


class SourceGuard(importlib.abc.MetaPathFinder):
    """A meta-path finder that loads the given modules from their ``.py`` sources, ahead of
    the extension modules Python's own finder would prefer."""

    def __init__(self, sources: Mapping[str, str]) -> None:
        self.sources = dict(sources)

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        src = self.sources.get(fullname)
        if src is None:
            return None
        return importlib.util.spec_from_file_location(fullname, src)


def install_guard(env: Mapping[str, str] = os.environ, root: Path = PACKAGE_DIR,
                  meta_path: list[Any] = sys.meta_path) -> list[str]:
    """Load stale compiled modules (all listed ones with ``STREAM_APP_PURE_PYTHON=1``) from
    source; returns the modules redirected. Called once by ``import stream_app``."""
    pure = env.get(PURE_ENV, "").strip().lower() in ("1", "true", "yes")
    states = status(root=root)
    redirect = [m for m, s in states.items() if s == "stale" or (pure and s == "compiled")]
    stale = [m for m in redirect if states[m] == "stale"]
    if stale:
        warnings.warn(f"{len(stale)} compiled module(s) older than their source, loaded from "
                      f"source instead ({', '.join(stale[:3])}...): run `stream-app compile`",
                      RuntimeWarning, stacklevel=2)
    if redirect and not any(isinstance(f, SourceGuard) for f in meta_path):
        meta_path.insert(0, SourceGuard({m: str(source_path(m, root)) for m in redirect}))
    return redirect


def build(modules: Iterable[str] = MODULES, *, force: bool = False, jobs: int = 2,
          root: Path = PACKAGE_DIR, echo: Any = print) -> list[str]:
    """Compile the modules whose extension is missing or stale (all with ``force``) in place
    and record their digests; returns the modules compiled. Raises RuntimeError when Cython
    or the C compiler fails (the sources keep working)."""
    modules = list(modules)
    states = status(modules, root)
    todo = [m for m in modules if force or states[m] != "compiled"]
    manifest = load_manifest(root / MANIFEST.name)
    if todo:
        if importlib.util.find_spec("Cython") is None:
            raise RuntimeError("Cython is not installed (pip install 'cython>=3.1')")
        files = [str(source_path(m, root)) for m in todo]
        digests = {m: digest(source_path(m, root)) for m in todo}
        echo(f"compiling {len(todo)} module(s) with Cython ({jobs} jobs)...")
        cmd = [sys.executable, "-m", "Cython.Build.Cythonize", "-i", "-f", "-q",
               "-j", str(jobs)]
        for directive in DIRECTIVES:
            cmd += ["-X", directive]
        with tempfile.TemporaryDirectory() as scratch:   # cythonize's build/ goes there
            done = subprocess.run(cmd + files, cwd=scratch, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"cythonize failed ({done.returncode}):\n"
                               f"{(done.stderr or done.stdout)[-3000:]}")
        for m in todo:
            c_file = source_path(m, root).with_suffix(".c")
            c_file.unlink(missing_ok=True)   # generated; the extension is what is kept
        manifest.update(digests)
    keep = {m: d for m, d in manifest.items() if extension_path(m, root) is not None}
    (root / MANIFEST.name).write_text(json.dumps(
        {"python": sys.implementation.cache_tag, "modules": keep}, indent=1, sort_keys=True))
    return todo


def clean(modules: Iterable[str] = MODULES, root: Path = PACKAGE_DIR) -> int:
    """Remove the compiled extensions and the manifest; returns how many were removed."""
    n = 0
    for m in modules:
        ext = extension_path(m, root)
        if ext is not None:
            ext.unlink()
            n += 1
    (root / MANIFEST.name).unlink(missing_ok=True)
    return n
