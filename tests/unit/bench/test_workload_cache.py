"""bench.workload.cached: a workload pickled in var/bench is keyed by users, seed and size in
its file name; the simulator that built it is checked too, so a workload of an older
simulator (e.g. before renewing graduates started a further course) is never reused."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest

from bench import workload as wl
from stream_app.config import REPO_ROOT


def _store(path: Path, w: wl.Workload) -> None:
    path.write_bytes(pickle.dumps(w))


def test_a_workload_of_this_simulator_is_reused(tmp_path: Path) -> None:
    path = tmp_path / "workload-u30-s3-all.pkl"
    first = wl.cached(path, lambda: wl.build(users=30, seed=3, days=1))
    assert first.meta["sim"] == wl.sim_fingerprint()
    again = wl.cached(path, lambda: pytest.fail("rebuilt a current workload"))
    assert again.records == first.records


@pytest.mark.parametrize("meta", [{}, {"sim": "0123456789ab"}])
def test_a_stale_workload_is_built_again_and_replaced(tmp_path: Path, meta) -> None:
    """A pickle from another simulator, or from before workloads carried a fingerprint,
    under the very name the bench looks for."""
    path = tmp_path / "workload-u30-s3-all.pkl"
    _store(path, wl.Workload([("events.click", b"u", b"{}", "old")], 1, 3, dict(meta)))
    w = wl.cached(path, lambda: wl.build(users=30, seed=3, days=1))
    assert w.records[0][3] != "old" and w.meta["sim"] == wl.sim_fingerprint()
    assert wl.load(path).records == w.records


def test_a_stale_workload_that_cannot_be_built_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "given.pkl"
    _store(path, wl.Workload([], 0, 42, {"sim": "0123456789ab"}))
    with pytest.raises(FileNotFoundError, match="no workload of this simulator"):
        wl.cached(path, lambda: None)


def test_the_fingerprint_follows_the_simulator_code_and_config(tmp_path, monkeypatch) -> None:
    sim = tmp_path / "sim"
    shutil.copytree(REPO_ROOT / "stream_app" / "sim", sim)
    cfg = tmp_path / "simulator.yaml"
    shutil.copy(REPO_ROOT / "config" / "simulator.yaml", cfg)
    monkeypatch.setattr(wl, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(wl, "SIM_SOURCES", (sim, cfg))

    def fp() -> str:
        wl.sim_fingerprint.cache_clear()
        return wl.sim_fingerprint()

    try:
        base = fp()
        assert fp() == base
        cfg.write_text(cfg.read_text().replace("renewal_start: 0.8", "renewal_start: 0.5"))
        changed_config = fp()
        (sim / "learner.py").write_text((sim / "learner.py").read_text() + "\n# changed\n")
        changed_code = fp()
        assert len({base, changed_config, changed_code}) == 3
    finally:
        wl.sim_fingerprint.cache_clear()
