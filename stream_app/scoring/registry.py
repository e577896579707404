"""The model registry: one River model and one release gate per target.

In live operation a single trainer owns the learning registry: it receives the (snapshot,
label) training pairs that the workers send, calls :meth:`ModelRegistry.learn`, and publishes
:meth:`ModelRegistry.snapshot` blobs to the compacted topic ``models.snapshots`` (key = target).
Every worker keeps a read-only registry and calls :meth:`ModelRegistry.load` for each blob it
reads, so all partitions score with the same model version. Offline evaluation uses one
registry for both roles. Blobs are pickles: the topic is internal and must be writable by the
trainer only.

Example:
    >>> from stream_app.scoring.config import load_scoring_config
    >>> cfg = load_scoring_config()
    >>> trainer, worker = ModelRegistry(cfg), ModelRegistry(cfg)
    >>> trainer.learn("convert", {"course_view|n": 2.0}, 1)    # prequential: before learning
    0.5
    >>> worker.load("convert", trainer.snapshot("convert"))
    >>> worker.version("convert") == trainer.version("convert") == "logreg@1"
    True
    >>> worker.source("convert")     # one label is far below the gate's min_labels
    'rules'
"""

from __future__ import annotations

import pickle
import random
import sys
from collections.abc import Callable
from typing import Any

from stream_app.errors import StreamAppError
from stream_app.scoring.calibration import PriorShift, make_calibrator
from stream_app.scoring.config import ScoringConfig
from stream_app.scoring.gate import Gate, GateState
from stream_app.scoring.models import compile_predict, contributions, make_learner, predict

__all__ = ["BLOB_FORMAT", "ModelRegistry", "SnapshotError", "describe_blob"]

BLOB_FORMAT = 1


class SnapshotError(StreamAppError):
    """A model snapshot blob cannot be loaded."""


class ModelRegistry:
    """Per-target River models, their gates and versions.

    Parameters:
        config: the scoring configuration.
        fast_predict: score linear models with a plain-Python copy of their weights and
            scaler statistics (:func:`models.compile_predict`), made at the second prediction
            of a model version, instead of through River's pipeline (about half the CPU
            per prediction; the same probability up to the order of the dot product's terms,
            bit-identical on the benchmark workload).
            ``False``: always River, for equivalence tests.
    """

    def __init__(self, config: ScoringConfig, fast_predict: bool = True) -> None:
        self.config = config
        self.fast_predict = fast_predict
        # target -> compiled predict of the current model, or the number of predictions made
        # through River since the model last changed (compiled at the second: a trainer that
        # learns between predictions never pays for compiling)
        self._fast: dict[str, Callable[[dict[str, float]], float] | int] = {}
        self._models: dict[str, Any] = {}
        self._gates: dict[str, Gate] = {}
        self._learned: dict[str, int] = {}
        self._learner: dict[str, str] = {}
        self._replay: dict[str, list[list[Any]]] = {}
        self._rng: dict[str, random.Random] = {}
        # target -> its calibrator (``calibration`` in config/scoring.yaml), if any
        self._cal: dict[str, PriorShift] = {}
        # target -> version(): read on every scored event, changed only by learn and load
        self._version: dict[str, str] = {}
        for name, t in config.targets.items():
            self._models[name] = make_learner(t.learner, None, config.learners)
            self._gates[name] = Gate(t.gate, t.alert_threshold)
            self._learned[name] = 0
            self._learner[name] = t.learner
            self._replay[name] = [[], []]
            self._rng[name] = random.Random(t.rehearsal.seed)
            cal = make_calibrator(t.calibration)
            if cal is not None:
                self._cal[name] = cal
            self._new_version(name)

    @property
    def targets(self) -> list[str]:
        return list(self._models)

    def predict(self, target: str, x: dict[str, float]) -> float:
        """The model's probability for ``target`` (0.5-ish before any learning), calibrated
        when the target has a calibrator (``calibration``: the probability the rules, the
        gate, the alerts and evaluation read). The compiled predict holds the calibration
        as it was when compiled: both change only in :meth:`learn` and :meth:`load`, which
        drop it."""
        fast = self._fast.get(target, 0)
        if fast.__class__ is not int:
            return fast(x)   # type: ignore[operator]
        cal = self._cal.get(target)
        if fast == 1 and self.fast_predict:
            fn = compile_predict(self._models[target])
            if fn is not None:
                if cal is not None:
                    fn = cal.wrap(fn)
                self._fast[target] = fn
                return fn(x)
        if fast < 2:         # 2: not compilable (or fast_predict off) until the model changes
            self._fast[target] = fast + 1    # type: ignore[operator]
        p = predict(self._models[target], x)
        return p if cal is None else cal.apply(p)

    def calibration(self, target: str) -> dict[str, Any] | None:
        """The target's calibrator state (None: uncalibrated)."""
        cal = self._cal.get(target)
        return None if cal is None else cal.describe()

    def learn(self, target: str, x: dict[str, float], y: int, gate: bool = True) -> float:
        """Prequential step: score ``x`` (for the gate) first, then learn ``(x, y)``.

        ``gate``: count this prediction in the release gate's window. One label usually
        brings several snapshots; only its latest (the score the user had right before the
        outcome) is counted, so the window holds the last N *labels*.

        Delayed labels arrive by class in bursts (withdrawals during a course, passes at its
        end; orders at once, "lost" leads much later). To keep such bursts from tilting an
        online model, each label is followed by ``rehearsal.replays`` examples of the other
        class drawn from a bounded reservoir of recent labelled snapshots (seeded, so a replay
        of the same labels gives the same model).

        The rehearsal shifts the model's class ratio towards 1:1; a target with a
        ``calibration`` counts both ratios (the labelled snapshots', and everything
        learned) and :meth:`predict` corrects for the shift
        (:mod:`stream_app.scoring.calibration`).

        Returns the prequential prediction, calibrated as :meth:`predict` (0.5 for a model
        that has learned nothing).
        """
        model = self._models[target]
        self._fast.pop(target, None)
        cal = self._cal.get(target)
        y = 1 if y else 0
        p = 0.5
        if self._learned[target]:
            p = predict(model, x)
            if cal is not None:
                p = cal.apply(p)
            if gate:
                self._gates[target].update(p, y)
        model.learn_one(x, bool(y))
        self._learned[target] += 1
        self._new_version(target)
        reh = self.config.targets[target].rehearsal
        replayed: list[int] = []
        if not reh.per_class:
            if cal is not None:
                cal.update(y, replayed)
            return p
        pools = self._replay[target]
        rng = self._rng[target]
        other = pools[1 - y]
        if other:
            for _ in range(reh.replays):
                model.learn_one(other[rng.randrange(len(other))], bool(1 - y))
                replayed.append(1 - y)
        for _ in range(reh.extra):
            cls = rng.randrange(2)
            if pools[cls]:
                model.learn_one(pools[cls][rng.randrange(len(pools[cls]))], bool(cls))
                replayed.append(cls)
        if cal is not None:
            cal.update(y, replayed)
        pool = pools[y]
        # interned names: the published blob pickles each feature name once, not per example
        kept = {sys.intern(k): v for k, v in x.items()}
        if len(pool) < reh.per_class:
            pool.append(kept)
        else:
            pool[rng.randrange(reh.per_class)] = kept
        return p

    def version(self, target: str) -> str:
        """``<learner>@<labels learned>``: changes with every label the model learns."""
        return self._version[target]

    def _new_version(self, target: str) -> None:
        self._version[target] = f"{self._learner[target]}@{self._learned[target]}"

    def gate(self, target: str) -> GateState:
        return self._gates[target].state(target, self.version(target), self._learned[target])

    def is_open(self, target: str) -> bool:
        """Whether ``target``'s model passes its release gate now."""
        return self._gates[target].is_open

    def source(self, target: str) -> str:
        """The model version when its gate is open, else ``"rules"``."""
        # (the gate's flag read directly: this runs for every target on every event)
        return self._version[target] if self._gates[target]._open else "rules"  # noqa: SLF001

    def explain(self, target: str, x: dict[str, float], k: int = 3
                ) -> list[tuple[str, float, bool | None]]:
        """Top features behind the score of ``x``: (feature, contribution, above its mean)
        (see :func:`models.contributions`)."""
        return contributions(self._models[target], x, k)

    def snapshot(self, target: str) -> bytes:
        """The model, gate window and version of ``target`` as one blob."""
        return pickle.dumps({
            "format": BLOB_FORMAT,
            "target": target,
            "learner": self._learner[target],
            "learned": self._learned[target],
            "model": self._models[target],
            "gate": self._gates[target].pairs(),
            "gate_open": self._gates[target].is_open,
            "replay": self._replay[target],
            "rng": self._rng[target].getstate(),
            "calibration": (self._cal[target].state() if target in self._cal else None),
        }, protocol=pickle.HIGHEST_PROTOCOL)

    def load(self, target: str, blob: bytes) -> None:
        """Replace ``target``'s model and gate by a published snapshot."""
        try:
            doc = pickle.loads(blob)  # noqa: S301 - internal topic written by the trainer only
        except Exception as exc:
            raise SnapshotError(f"model snapshot for {target!r} cannot be read: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("format") != BLOB_FORMAT:
            raise SnapshotError(f"model snapshot for {target!r} has an unknown format")
        if doc.get("target") != target:
            raise SnapshotError(f"snapshot is for {doc.get('target')!r}, not {target!r}")
        self._models[target] = doc["model"]
        self._fast.pop(target, None)
        self._learner[target] = doc["learner"]
        self._learned[target] = int(doc["learned"])
        self._new_version(target)
        self._gates[target].load_pairs(doc["gate"], doc.get("gate_open"))
        self._replay[target] = doc.get("replay") or [[], []]
        if "rng" in doc:
            self._rng[target].setstate(doc["rng"])
        cal = self._cal.get(target)
        if cal is not None:
            # (a blob of an earlier release has no counts: uncalibrated until min_examples)
            cal.load(doc.get("calibration"))


def describe_blob(blob: bytes, config: ScoringConfig) -> dict[str, Any]:
    """The gate state (version, open, precision, recall, ...) of a published model snapshot,
    for the API, metrics and CLI that read ``models.snapshots``.

    >>> from stream_app.scoring.config import load_scoring_config
    >>> cfg = load_scoring_config()
    >>> reg = ModelRegistry(cfg)
    >>> reg.learn("at_risk", {"a": 1.0}, 1)
    0.5
    >>> d = describe_blob(reg.snapshot("at_risk"), cfg)
    >>> d["target"], d["version"], d["open"]
    ('at_risk', 'logreg_std@1', False)
    """
    try:
        target = pickle.loads(blob)["target"]  # noqa: S301 - internal topic
    except Exception as exc:
        raise SnapshotError(f"model snapshot cannot be read: {exc}") from exc
    reg = ModelRegistry(config.only([target]))
    reg.load(target, blob)
    return reg.gate(target).to_dict()
