"""SASL (PLAIN / SCRAM) and TLS settings for every Kafka client, from ``STREAM_APP_KAFKA_*``.

One :class:`KafkaSecurity` (read from the environment like the other settings) gives:

- :func:`client_security_config` — librdkafka (confluent-kafka) properties for the tools
  (replay, simulator, rebuild, tests);
- :func:`faust_security_kwargs` — ``broker_credentials`` for ``faust.App`` (aiokafka), with
  an ``ssl.SSLContext`` built from the CA/cert/key files when TLS is on.

Example:
    >>> sec = KafkaSecurity(kafka_security_protocol="SASL_SSL",
    ...                     kafka_sasl_mechanism="SCRAM-SHA-512",
    ...                     kafka_sasl_username="svc", kafka_sasl_password="pw",
    ...                     kafka_ssl_cafile="/etc/ca.pem")
    >>> cfg = client_security_config(sec)
    >>> cfg["security.protocol"], cfg["sasl.mechanism"], cfg["ssl.ca.location"]
    ('SASL_SSL', 'SCRAM-SHA-512', '/etc/ca.pem')
    >>> client_security_config(KafkaSecurity())
    {}
    >>> "pw" in repr(sec)
    False
"""

from __future__ import annotations

import ssl
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream_app.errors import ConfigError

Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Mechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSecurity(BaseSettings):
    """How clients authenticate to the broker (env prefix ``STREAM_APP_``)."""

    model_config = SettingsConfigDict(env_prefix="STREAM_APP_", env_file=".env", extra="ignore")

    kafka_security_protocol: Protocol = Field("PLAINTEXT", description="Kafka security.protocol")
    kafka_sasl_mechanism: Mechanism = Field("SCRAM-SHA-512", description="SASL mechanism")
    kafka_sasl_username: str = Field("", description="SASL user")
    kafka_sasl_password: SecretStr = Field(SecretStr(""), description="SASL password")
    kafka_ssl_cafile: str = Field("", description="CA bundle that signed the broker cert")
    kafka_ssl_certfile: str = Field("", description="client certificate (mutual TLS)")
    kafka_ssl_keyfile: str = Field("", description="client private key (mutual TLS)")
    kafka_ssl_check_hostname: bool = Field(True, description="verify the broker host name")

    @property
    def sasl(self) -> bool:
        return self.kafka_security_protocol.startswith("SASL")

    @property
    def tls(self) -> bool:
        return self.kafka_security_protocol in ("SSL", "SASL_SSL")

    def validate_complete(self) -> None:
        """Raise ConfigError when SASL is on without a user or password."""
        if self.sasl and not (self.kafka_sasl_username
                              and self.kafka_sasl_password.get_secret_value()):
            raise ConfigError("SASL is on (STREAM_APP_KAFKA_SECURITY_PROTOCOL="
                              f"{self.kafka_security_protocol}) but STREAM_APP_KAFKA_SASL_"
                              "USERNAME/PASSWORD are not set")


def client_security_config(sec: KafkaSecurity | None = None) -> dict[str, Any]:
    """librdkafka properties for ``sec`` (empty for PLAINTEXT: nothing to add)."""
    sec = sec or KafkaSecurity()
    if sec.kafka_security_protocol == "PLAINTEXT":
        return {}
    sec.validate_complete()
    cfg: dict[str, Any] = {"security.protocol": sec.kafka_security_protocol}
    if sec.sasl:
        cfg["sasl.mechanism"] = sec.kafka_sasl_mechanism
        cfg["sasl.username"] = sec.kafka_sasl_username
        cfg["sasl.password"] = sec.kafka_sasl_password.get_secret_value()
    if sec.tls:
        if sec.kafka_ssl_cafile:
            cfg["ssl.ca.location"] = sec.kafka_ssl_cafile
        if sec.kafka_ssl_certfile:
            cfg["ssl.certificate.location"] = sec.kafka_ssl_certfile
        if sec.kafka_ssl_keyfile:
            cfg["ssl.key.location"] = sec.kafka_ssl_keyfile
        cfg["ssl.endpoint.identification.algorithm"] = (
            "https" if sec.kafka_ssl_check_hostname else "none")
    return cfg


def ssl_context(sec: KafkaSecurity) -> ssl.SSLContext:
    """A client TLS context: the CA file (or system CAs), optional client cert and key."""
    ctx = ssl.create_default_context(cafile=sec.kafka_ssl_cafile or None)
    ctx.check_hostname = sec.kafka_ssl_check_hostname
    if sec.kafka_ssl_certfile:
        ctx.load_cert_chain(sec.kafka_ssl_certfile, sec.kafka_ssl_keyfile or None)
    return ctx


def faust_security_kwargs(sec: KafkaSecurity | None = None) -> dict[str, Any]:
    """Keyword arguments for ``faust.App`` (``broker_credentials``); empty for PLAINTEXT.

    >>> faust_security_kwargs(KafkaSecurity())
    {}
    """
    sec = sec or KafkaSecurity()
    if sec.kafka_security_protocol == "PLAINTEXT":
        return {}
    sec.validate_complete()
    import faust  # noqa: PLC0415 - only the worker needs it

    ctx = ssl_context(sec) if sec.tls else None
    if sec.sasl:
        creds = faust.SASLCredentials(
            username=sec.kafka_sasl_username,
            password=sec.kafka_sasl_password.get_secret_value(),
            mechanism=sec.kafka_sasl_mechanism, ssl_context=ctx)
    else:
        creds = faust.SSLCredentials(ctx)
    return {"broker_credentials": creds}
