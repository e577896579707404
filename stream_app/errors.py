"""Exception hierarchy of stream-app.

::

    StreamAppError
     ├── ConfigError            bad settings or configuration files
     ├── ContractError          topics/ contract is missing or inconsistent
     ├── EventError             an input record cannot be processed (goes to the DLQ)
     │    (carries ``reason``: a short machine-readable code, and ``detail``)
     ├── RuleError              a rule file is invalid (names file, line and rule)
     ├── ServiceError           an embedded service (broker, Redis) failed to start
     │    └── WorkdirBusyError  a work directory belongs to a stack that still runs
     └── UnreachableError       a broker given by address does not answer

Example:
    >>> e = EventError("bad_ts", "ts 'yesterday' is not ISO-8601 or epoch ms")
    >>> e.reason, str(e)
    ('bad_ts', "bad_ts: ts 'yesterday' is not ISO-8601 or epoch ms")
"""

from __future__ import annotations


class StreamAppError(Exception):
    """Root of every error raised by stream-app."""


class ConfigError(StreamAppError):
    """Settings or a configuration file are invalid."""


class ContractError(StreamAppError):
    """The topic contract in ``topics/`` is missing or inconsistent."""


class RuleError(StreamAppError):
    """A rule file is invalid; the message names the file, line and rule."""


class ServiceError(StreamAppError):
    """An embedded service (broker, Redis, Prometheus) failed to start or stop."""


class WorkdirBusyError(ServiceError):
    """A stack's work directory is in use by a stack that still runs (its ``stack.lock``);
    ``owner`` is that stack's record (pid, command, start time, services)."""

    def __init__(self, message: str, workdir: object = None,
                 owner: dict | None = None) -> None:
        super().__init__(message)
        self.workdir = workdir
        self.owner = dict(owner or {})


class EventError(StreamAppError):
    """An input record cannot be processed; ``reason`` is the DLQ reason code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class UnreachableError(StreamAppError):
    """A Kafka broker (or another server given by address) does not answer in time."""
