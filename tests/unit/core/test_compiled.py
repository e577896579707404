"""Compiled hot modules (``stream_app/compiled.py``): a build older than its source never runs,
the build records what it compiled, and the test run uses the compiled modules."""

from __future__ import annotations

import importlib
import importlib.machinery
import json
import os
import sys
from pathlib import Path

import pytest

from stream_app import compiled

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def _package(tmp_path: Path, name: str, body: str = "VALUE = 1\n") -> Path:
    root = tmp_path / name
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "mod.py").write_text(body)
    return root


def test_status_follows_the_extension_and_the_digest(tmp_path) -> None:
    root = _package(tmp_path, "pkg_status")
    mod = "pkg_status.mod"
    assert compiled.status([mod], root) == {mod: "source"}
    (root / f"mod{SUFFIX}").write_bytes(b"not really an extension")
    assert compiled.status([mod], root) == {mod: "stale"}          # no digest recorded
    good = {mod: compiled.digest(root / "mod.py")}
    assert compiled.status([mod], root, manifest=good) == {mod: "compiled"}
    (root / "mod.py").write_text("VALUE = 2\n")                      # the source moved on
    assert compiled.status([mod], root, manifest=good) == {mod: "stale"}


def test_the_guard_loads_a_stale_module_from_source(tmp_path, monkeypatch) -> None:
    root = _package(tmp_path, "pkg_guard", "VALUE = 'from source'\n")
    # an extension Python would prefer (and fail to load: it is not a real one)
    (root / f"mod{SUFFIX}").write_bytes(b"\x7fELF broken")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError):
        importlib.import_module("pkg_guard.mod")
    sys.modules.pop("pkg_guard.mod", None)
    guard = compiled.SourceGuard({"pkg_guard.mod": str(root / "mod.py")})
    monkeypatch.setattr(sys, "meta_path", [guard, *sys.meta_path])
    mod = importlib.import_module("pkg_guard.mod")
    assert mod.VALUE == "from source" and mod.__file__.endswith("mod.py")
    sys.modules.pop("pkg_guard.mod", None)


def test_install_guard_redirects_stale_and_on_request_all(tmp_path, monkeypatch) -> None:
    root = tmp_path / "stream_app"
    (root / "rules").mkdir(parents=True)
    (root / "rules" / "engine.py").write_text("X = 1\n")
    (root / "clock.py").write_text("Y = 1\n")
    for rel in ("rules/engine", "clock"):
        (root / f"{rel}{SUFFIX}").write_bytes(b"ext")
    (root / "_compiled.json").write_text(json.dumps({
        "python": sys.implementation.cache_tag,
        "modules": {"stream_app.clock": compiled.digest(root / "clock.py"),
                    "stream_app.rules.engine": "an older digest"}}))
    meta: list = []
    with pytest.warns(RuntimeWarning, match="stream_app.rules.engine"):
        assert compiled.install_guard({}, root, meta) == ["stream_app.rules.engine"]
    assert len(meta) == 1 and meta[0].sources == {
        "stream_app.rules.engine": str(root / "rules" / "engine.py")}
    meta = []
    with pytest.warns(RuntimeWarning):
        redirected = compiled.install_guard({compiled.PURE_ENV: "1"}, root, meta)
    assert sorted(redirected) == ["stream_app.clock", "stream_app.rules.engine"]


def test_build_compiles_records_and_notices_an_edit(tmp_path, monkeypatch) -> None:
    pytest.importorskip("Cython")
    body = "def twice(x: int) -> int:\n    return x * 2\n\n\ndef label(x: int) -> str:\n" \
           "    return f'x={x!r}'\n"
    root = _package(tmp_path, "pkg_build", body)
    mod = "pkg_build.mod"
    assert compiled.build([mod], root=root, echo=lambda _m: None) == [mod]
    assert compiled.extension_path(mod, root) is not None
    assert compiled.load_manifest(root / "_compiled.json") == {
        mod: compiled.digest(root / "mod.py")}
    assert compiled.status([mod], root) == {mod: "compiled"}
    assert compiled.build([mod], root=root, echo=lambda _m: None) == []   # up to date
    monkeypatch.syspath_prepend(str(tmp_path))
    m = importlib.import_module(mod)
    # compiled, and the annotations are not C types: a float still goes through twice()
    assert m.__file__.endswith(SUFFIX) and m.twice(1.5) == 3.0 and m.label(2) == "x=2"
    sys.modules.pop(mod, None)
    (root / "mod.py").write_text(body + "\nEXTRA = 1\n")
    assert compiled.status([mod], root) == {mod: "stale"}
    assert compiled.clean([mod], root) == 1 and compiled.status([mod], root) == {mod: "source"}


@pytest.mark.skipif(os.environ.get("STREAM_APP_REQUIRE_COMPILED") != "1",
                    reason="only where the run must use the compiled modules (make test)")
def test_the_test_run_uses_the_compiled_hot_modules() -> None:
    states = compiled.status()
    assert set(states.values()) == {"compiled"}, {m: s for m, s in states.items()
                                                  if s != "compiled"}
    import stream_app.rules.engine as engine

    assert engine.__file__.endswith(SUFFIX)
