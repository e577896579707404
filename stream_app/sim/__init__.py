"""The event simulator: a seeded, realistic stream of an education company's learners.

Pure (no Kafka, no Redis): the ``simulate`` command writes files, ``stream-app dev`` produces
:meth:`Simulator.live` to the broker, benchmarks use :meth:`Simulator.events`.

Example:
    >>> from stream_app.sim import Simulator, load_sim_config, parse_injection
    >>> sim = Simulator(load_sim_config(overrides={"users": 20}), seed=1,
    ...                 injections=[parse_injection("spike:start=1d,duration=2h")])
    >>> n = sum(1 for _ in sim.events(duration_ms=2 * 86_400_000))
    >>> n > 20, sim.ground_truth()["injections"][0]["kind"]
    (True, 'spike')
"""

from stream_app.sim.config import SimConfig, load_sim_config
from stream_app.sim.inject import ActiveInjection, Injection, parse_injection
from stream_app.sim.io import read_json, read_jsonl, write_json, write_jsonl
from stream_app.sim.simulator import START, Simulator

__all__ = [
    "START",
    "ActiveInjection",
    "Injection",
    "SimConfig",
    "Simulator",
    "load_sim_config",
    "parse_injection",
    "read_json",
    "read_jsonl",
    "write_json",
    "write_jsonl",
]
