"""Follow published rule sets (topic ``rules.versions``) so the API's tag catalog matches the
workers' after ``stream-app rules apply``.

A daemon thread reads the compacted topic from the beginning with an assigned consumer (no
group), compiles each bundle and hands the newest valid :class:`RuleSet` to a callback.
Bundles that fail to compile are logged and skipped (the workers refuse them too).

Example (not run: needs a broker)::

    f = RuleFollower("127.0.0.1:9092", on_ruleset=lambda rs: print(rs.version)).start()
    ...
    f.stop()
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from stream_app.errors import StreamAppError

log = logging.getLogger(__name__)
TOPIC = "rules.versions"


class RuleFollower:
    """Calls ``on_ruleset(ruleset)`` for every valid rule set published on the topic."""

    def __init__(self, bootstrap: str, on_ruleset: Callable[[Any], None],
                 topic: str = TOPIC, poll_s: float = 1.0) -> None:
        self.bootstrap = bootstrap
        self.on_ruleset = on_ruleset
        self.topic = topic
        self.poll_s = poll_s
        self.version: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> RuleFollower:
        self._thread = threading.Thread(target=self._run, name="rule-follower", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def handle(self, blob: bytes) -> bool:
        """Compile one published bundle; True when it became the current rule set."""
        from stream_app.rules_bundle import compile_bundle, decode  # noqa: PLC0415

        try:
            rs = compile_bundle(decode(blob))
        except (StreamAppError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring an invalid published rule set: %s", exc)
            return False
        if rs.version == self.version:
            return False
        self.version = rs.version
        self.on_ruleset(rs)
        log.info("API tag catalog now follows rule set %s", rs.version)
        return True

    def _run(self) -> None:
        from stream_app.kafka_io import read_assigned  # noqa: PLC0415
        from stream_app.rules_bundle import topic_problem  # noqa: PLC0415

        consumer = None
        while not self._stop.is_set():
            try:
                if consumer is None:
                    problem = topic_problem(self.bootstrap, self.topic)
                    if problem:   # partition 0 only would miss sets: check again later
                        log.error("API tag catalog does not follow rule sets: %s", problem)
                        self._stop.wait(60.0)
                        continue
                    consumer = read_assigned(self.bootstrap, self.topic, 1)
                last = None
                for msg in consumer.consume(num_messages=100, timeout=self.poll_s):
                    if not msg.error() and msg.value():
                        last = msg.value()
                if last is not None:
                    self.handle(last)
            except Exception as exc:  # noqa: BLE001 - keep following; the broker may return
                log.warning("rule follower: %s", exc)
                self._stop.wait(5.0)
        if consumer is not None:
            consumer.close()
