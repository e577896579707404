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

import logging
import math
import pickle
import random
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from stream_app.errors import StreamAppError
from stream_app.scoring.calibration import PriorShift, make_calibrator
from stream_app.scoring.config import ScoringConfig
from stream_app.scoring.gate import Gate, GateState
from stream_app.scoring.models import compile_predict, contributions, make_learner, predict

__all__ = ["BLOB_FORMAT", "ModelRegistry", "SnapshotError", "describe_blob", "finite_model"]

BLOB_FORMAT = 1
REFUSED_LOG_EVERY_S = 60.0
_INF = math.inf
log = logging.getLogger(__name__)


def _finite_values(x: dict[str, float]) -> bool:
    """Whether every value of ``x`` is a finite number (one sum for the usual case: a NaN
    or an inf makes it non-finite; only a non-finite sum is looked at value by value, as
    finite values can overflow it). A value that is not a number is left to the learner.

    >>> _finite_values({"a": 1.0, "b": 2}), _finite_values({"a": float("nan")})
    (True, False)
    >>> _finite_values({"a": 1e308, "b": 1e308}), _finite_values({"a": -float("inf")})
    (True, False)
    """
    try:
        total = sum(x.values(), 0.0)
    except TypeError:
        return True
    if -_INF < total < _INF:
        return True
    isfinite = math.isfinite
    return all(isfinite(v) for v in x.values())


def finite_model(obj: Any) -> bool:
    """Whether every float (and numpy array) reachable from ``obj`` (through containers and
    object attributes) is finite: a River model's weights, scaler and tree statistics (not
    the drift detectors' windows, which River keeps out of reach).

    >>> from stream_app.scoring.models import make_learner
    >>> m = make_learner("logreg")
    >>> m.learn_one({"a": 1.0}, True)
    >>> finite_model(m)
    True
    >>> m["LogisticRegression"]._weights["a"] = float("nan")
    >>> finite_model(m)
    False
    """
    seen: set[int] = set()
    stack = [obj]
    isfinite = math.isfinite
    while stack:
        o = stack.pop()
        cls = o.__class__
        if cls is float:
            if not isfinite(o):
                return False
            continue
        if cls is int or cls is str or cls is bool or o is None or cls is bytes:
            continue
        if id(o) in seen:
            continue
        seen.add(id(o))
        if isinstance(o, dict):
            stack.extend(o.values())
        elif isinstance(o, list | tuple | set | frozenset):
            stack.extend(o)
        elif isinstance(o, float):      # numpy float64 and other float subclasses
            if not isfinite(o):
                return False
        elif hasattr(o, "dtype") and hasattr(o, "shape"):     # numpy array or scalar
            try:
                import numpy as np  # noqa: PLC0415

                if o.dtype.kind in "fc" and not bool(np.isfinite(o).all()):
                    return False
            except TypeError:
                pass
        elif isinstance(o, type):
            continue
        else:
            d = getattr(o, "__dict__", None)
            if d is not None:
                stack.extend(d.values())
            for slot in getattr(cls, "__slots__", ()):
                v = getattr(o, slot, None)
                if v is not None:
                    stack.append(v)
            if isinstance(o, Mapping):
                stack.extend(o.values())
            elif d is None and callable(getattr(o, "to_dict", None)):
                stack.extend(o.to_dict().values())     # River's VectorDict (the weights)
    return True


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
        #: target -> training examples refused by :meth:`learn` (a non-finite feature or score)
        self.refused: dict[str, int] = {}
        self._refused_logged: dict[str, float] = {}
        #: target -> the last blob :meth:`publishable_snapshot` returned or :meth:`load`
        #: loaded, and how often the model went back to it (a non-finite model)
        self._good: dict[str, bytes] = {}
        self.rollbacks: dict[str, int] = {}
        for name in config.targets:
            self._fresh(name)

    def _fresh(self, name: str) -> None:
        """Target ``name`` as configured, having learned nothing."""
        t = self.config.targets[name]
        self._models[name] = make_learner(t.learner, None, self.config.learners)
        self._fast.pop(name, None)
        self._gates[name] = Gate(t.gate, t.alert_threshold)
        self._learned[name] = 0
        self._learner[name] = t.learner
        self._replay[name] = [[], []]
        self._rng[name] = random.Random(t.rehearsal.seed)
        cal = make_calibrator(t.calibration)
        if cal is not None:
            self._cal[name] = cal
        else:
            self._cal.pop(name, None)
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
        that has learned nothing), or None for a refused example: one with a feature that
        is not a finite number, or whose prequential score is not (QA33 F1: one example
        with an inf feature made most weights NaN, and every later score NaN, for good).
        A refused example changes nothing (model, gate, reservoir, calibration, version);
        it is counted (:attr:`refused`) and logged at most once a minute per target.
        """
        if not _finite_values(x):
            self._refuse(target, "a feature is not a finite number")
            return None
        model = self._models[target]
        cal = self._cal.get(target)
        y = 1 if y else 0
        p = 0.5
        if self._learned[target]:
            p = predict(model, x)
            if cal is not None:
                p = cal.apply(p)
            if not -_INF < p < _INF:
                self._refuse(target, f"its prequential score is {p}")
                return None
            if gate:
                self._gates[target].update(p, y)
        self._fast.pop(target, None)
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

    def _refuse(self, target: str, why: str) -> None:
        n = self.refused[target] = self.refused.get(target, 0) + 1
        now = time.monotonic()
        last = self._refused_logged.get(target)
        if last is None or now - last >= REFUSED_LOG_EVERY_S:
            self._refused_logged[target] = now
            log.warning("%s: training example refused (%s); %d refused so far", target, why, n)

    def finite(self, target: str) -> bool:
        """Whether every number in ``target``'s model (weights, scaler statistics, tree
        statistics) is finite: the trainer publishes no other (QA33 F1)."""
        return finite_model(self._models[target])

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

    def publishable_snapshot(self, target: str) -> bytes | None:
        """:meth:`snapshot`, or None when the model holds a number that is not finite (a NaN
        weight would make every score NaN for good, QA33 F1): the target then goes back to
        the last blob this returned or :meth:`load` loaded (a fresh model if none), the
        labels learned since are
        dropped, and :attr:`rollbacks` counts it. The trainer publishes only these."""
        if self.finite(target):
            blob = self._good[target] = self.snapshot(target)
            return blob
        self.rollbacks[target] = self.rollbacks.get(target, 0) + 1
        good = self._good.get(target)
        log.error("%s: model %s holds non-finite numbers: not published, back to %s",
                  target, self.version(target), "the last published one" if good else
                  "a fresh model")
        if good is None:
            self._fresh(target)
        else:
            self.load(target, good)
        return None

    def load(self, target: str, blob: bytes) -> None:
        """Replace ``target``'s model and gate by a published snapshot. A snapshot whose
        model holds a non-finite number is refused (:class:`SnapshotError`; QA33 F1): the
        registry keeps its model."""
        try:
            doc = pickle.loads(blob)  # noqa: S301 - internal topic written by the trainer only
        except Exception as exc:
            raise SnapshotError(f"model snapshot for {target!r} cannot be read: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("format") != BLOB_FORMAT:
            raise SnapshotError(f"model snapshot for {target!r} has an unknown format")
        if doc.get("target") != target:
            raise SnapshotError(f"snapshot is for {doc.get('target')!r}, not {target!r}")
        if not finite_model(doc.get("model")):
            raise SnapshotError(f"model snapshot for {target!r} ({doc.get('learner')}@"
                                f"{doc.get('learned')}) holds non-finite numbers")
        self._models[target] = doc["model"]
        self._fast.pop(target, None)
        self._learner[target] = doc["learner"]
        self._learned[target] = int(doc["learned"])
        self._new_version(target)
        self._gates[target].load_pairs(doc["gate"], doc.get("gate_open"))
        self._good[target] = blob
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
