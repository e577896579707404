"""Parse cost: CPU µs per event of ``parse_event`` + ``protect_event_props`` (what the worker
does with each input record before it loads the user's state), this tree against another
stream_app tree, in one process over the seeded simulator workload.

Both trees first see every record in lockstep and must give the same outcome: the Event's
fields (and their types) after the PII step, or the error's reason and detail (the
dead-letter record), or another exception's text. Then whole passes over the records
alternate between the trees (who goes first alternates too), each timed in CPU time with
the collector off, so machine load hits both alike.

Usage::

    git archive <rev> stream_app bench config topics | tar -x -C /tmp/base
    python -m bench.parse_cost --against /tmp/base                  # first 60k events
    python -m bench.parse_cost --against /tmp/base --events 225000 --rounds 7

Example (a tiny run, this tree against itself):
    >>> from bench.workload import build
    >>> from stream_app.config import REPO_ROOT
    >>> res = compare(build(users=30, seed=3, days=2), REPO_ROOT, events=200, rounds=1)
    >>> res["same_result"], res["accepted"] == res["events"] > 0
    (True, True)
"""

from __future__ import annotations

import argparse
import gc
import importlib
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bench.trees import other_tree
from stream_app.contract import load_contract
from stream_app.errors import EventError
from stream_app.events import parse_event
from stream_app.security.pii import protect_event_props

VAR = Path(__file__).resolve().parent.parent / "var" / "bench"
#: a fixed PII key, so that both trees hash alike whatever the environment says
KEY = b"parse-cost-key"
Step = tuple[Callable[..., Any], Callable[..., Any], type[Exception]]


def _import_tree(root: Path) -> Step:
    """``(parse_event, protect_event_props, EventError)`` of the stream_app tree under
    ``root``, imported apart from this process's own (:func:`bench.trees.other_tree`)."""
    with other_tree(root):
        events = importlib.import_module("stream_app.events")
        pii = importlib.import_module("stream_app.security.pii")
        errors = importlib.import_module("stream_app.errors")
        return events.parse_event, pii.protect_event_props, errors.EventError


def outcome(step: Step, raw: Any, stream: str) -> tuple[Any, ...]:
    """What the worker does with one record: the protected Event's fields, or its error."""
    parse, protect, error = step
    try:
        ev = protect(parse(raw, stream), KEY)
    except error as exc:
        return ("error", exc.reason, exc.detail)  # type: ignore[attr-defined]
    except Exception as exc:  # noqa: BLE001 - the worker's "invalid" dead letter
        return ("other", type(exc).__name__, str(exc))
    fields = ev.to_dict()
    return ("ok", orjson.dumps(fields), tuple(type(v).__name__ for v in fields.values()))


def _timed_pass(step: Step, records: list[tuple[bytes, str]]) -> float:
    """CPU µs per record of one pass, the collector off (and a collection before)."""
    parse, protect, error = step
    gc.collect()
    gc.disable()
    t0 = time.process_time()
    for raw, stream in records:
        try:  # noqa: SIM105 - contextlib.suppress would cost more than a record's parse
            protect(parse(raw, stream), KEY)
        except error:
            pass
    dt = time.process_time() - t0
    gc.enable()
    return dt / len(records) * 1e6


def compare(wl: Any, other: Path, events: int = 60_000, rounds: int = 5) -> dict[str, Any]:
    """This tree against the one under ``other``: same outcomes, then alternating passes."""
    contract = load_contract()
    records = [(value, contract.stream_of(topic)) for topic, _, value, _ in wl.records[:events]]
    steps = {"other": _import_tree(other), "this": (parse_event, protect_event_props, EventError)}
    diffs = accepted = 0
    for raw, stream in records:
        a, b = (outcome(steps[k], raw, stream) for k in ("other", "this"))
        diffs += a != b
        accepted += b[0] == "ok"
    us: dict[str, list[float]] = {"other": [], "this": []}
    for r in range(rounds):
        for name in (("other", "this") if r % 2 == 0 else ("this", "other")):
            us[name].append(round(_timed_pass(steps[name], records), 3))
    ratios = [o / t for o, t in zip(us["other"], us["this"], strict=True)]
    return {"events": len(records), "accepted": accepted, "same_result": diffs == 0,
            "differences": diffs, "rounds": rounds, "us_per_event": us,
            "ratio_other_over_this": [round(x, 3) for x in ratios],
            "ratio_median": round(statistics.median(ratios), 3)}


def main(argv: list[str] | None = None) -> None:
    from bench.workload import build, cached  # noqa: PLC0415

    p = argparse.ArgumentParser(prog="python -m bench.parse_cost", description=__doc__.split(
        "\n\n")[0])
    p.add_argument("--against", type=Path, required=True, metavar="DIR",
                   help="the stream_app tree to compare with (e.g. an older revision)")
    p.add_argument("--users", type=int, default=50_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--events", type=int, default=60_000)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    path = VAR / f"workload-u{args.users}-s{args.seed}-225000.pkl"
    wl = cached(path, lambda: build(args.users, args.seed, max_events=225_000))
    res = compare(wl, args.against, events=args.events, rounds=args.rounds)
    print(f"parse_event + protect_event_props over {res['events']:,} events "
          f"({res['accepted']:,} accepted), same outcomes: {res['same_result']} "
          f"({res['differences']} differences)")
    for name in ("other", "this"):
        per_round = " ".join(f"{x:6.2f}" for x in res["us_per_event"][name])
        print(f"  {name:<5} CPU µs/event {per_round}")
    print(f"  other/this   {' '.join(f'{x:6.2f}' for x in res['ratio_other_over_this'])}"
          f"   median {res['ratio_median']}x")


if __name__ == "__main__":
    main()
