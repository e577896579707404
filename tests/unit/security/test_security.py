"""Security helpers: PII protection, bearer tokens, SASL/TLS settings for every client."""

from __future__ import annotations

import logging

import pytest

from stream_app.errors import ConfigError
from stream_app.events import parse_event
from stream_app.security import pii, tokens
from stream_app.security.kafka_auth import (
    KafkaSecurity,
    client_security_config,
    faust_security_kwargs,
)

KEY = b"test-key"


def test_every_identifier_is_hashed_and_nothing_else_changes():
    props = {"phone": "13800138000", "Email": "a@b.cn", "wechat_id": "wx1", "name": "Li",
             "region": "sh", "amount": 5, "nested": {"mobile": "13900000000", "x": 1}}
    out = pii.protect_props(props, KEY)
    for field in ("phone", "Email", "wechat_id", "name"):
        assert out[field].startswith(pii.HASH_PREFIX)
        assert str(props[field]) not in repr(out)
    assert out["nested"]["mobile"].startswith(pii.HASH_PREFIX)
    assert (out["region"], out["amount"], out["nested"]["x"]) == ("sh", 5, 1)
    assert props["phone"] == "13800138000"  # the input is not modified


def test_hash_is_keyed_stable_and_idempotent():
    a = pii.protect_props({"phone": "+86 138 0013 8000"}, KEY)
    b = pii.protect_props({"phone": "13800138000"}, KEY)
    c = pii.protect_props({"phone": "13800138000"}, b"another-key")
    assert a == b and a != c
    assert pii.protect_props(a, KEY) == a  # hashing twice changes nothing


def test_drop_mode_and_structured_identifiers_are_removed():
    out = pii.protect_props({"name": "Li", "email": {"work": "x@y"}, "k": 1}, KEY, mode="drop")
    assert out == {"k": 1}
    assert "email" not in pii.protect_props({"email": ["x@y"]}, KEY)


def test_event_props_protected_in_place():
    ev = parse_event(b'{"event_id":"e","user_id":"u","ts":1714528800000,"type":"registered",'
                     b'"props":{"phone":"13800138000","region":"sh"}}', "profile")
    pii.protect_event_props(ev, KEY)
    assert ev.props["region"] == "sh" and ev.props["phone"].startswith("h:")


def test_redact_for_logs(caplog):
    log = logging.getLogger("t")
    with caplog.at_level(logging.INFO):
        log.info("event %s", pii.redact({"props": {"email": "a@b.cn", "n": 1}}))
    assert "a@b.cn" not in caplog.text and "<redacted>" in caplog.text


def test_tokens_scope_tenants_and_reject_bad_headers():
    t = tokens.parse_tokens("t1=alpha, t2=beta, ,t3=")
    assert t == {"alpha": "t1", "beta": "t2"}
    assert tokens.authorize("bearer alpha", t) == "t1"
    for bad in (None, "", "Bearer", "Basic alpha", "Bearer alph", "Bearer alpha2", "alpha"):
        assert tokens.authorize(bad, t) is None, bad
    assert tokens.allowed("t1", "t1") and not tokens.allowed("t1", "t2")


def test_kafka_security_plaintext_adds_nothing():
    assert client_security_config(KafkaSecurity()) == {}
    assert faust_security_kwargs(KafkaSecurity()) == {}


def test_kafka_sasl_scram_flows_to_both_clients():
    sec = KafkaSecurity(kafka_security_protocol="SASL_PLAINTEXT",
                        kafka_sasl_mechanism="SCRAM-SHA-256", kafka_sasl_username="svc",
                        kafka_sasl_password="pw")
    cfg = client_security_config(sec)
    assert cfg == {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-256",
                   "sasl.username": "svc", "sasl.password": "pw"}
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    auth = credentials_to_aiokafka_auth(faust_security_kwargs(sec)["broker_credentials"])
    assert auth["security_protocol"] == "SASL_PLAINTEXT"
    assert auth["sasl_mechanism"] == "SCRAM-SHA-256"
    assert (auth["sasl_plain_username"], auth["sasl_plain_password"]) == ("svc", "pw")


def test_kafka_tls_builds_a_context(tmp_path):
    import ssl

    sec = KafkaSecurity(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="PLAIN",
                        kafka_sasl_username="svc", kafka_sasl_password="pw",
                        kafka_ssl_check_hostname=False)
    cfg = client_security_config(sec)
    assert cfg["security.protocol"] == "SASL_SSL"
    assert cfg["ssl.endpoint.identification.algorithm"] == "none"
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    auth = credentials_to_aiokafka_auth(faust_security_kwargs(sec)["broker_credentials"])
    assert auth["security_protocol"] == "SASL_SSL"
    assert isinstance(auth["ssl_context"], ssl.SSLContext)


def test_kafka_settings_from_environment(monkeypatch):
    monkeypatch.setenv("STREAM_APP_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("STREAM_APP_KAFKA_SASL_USERNAME", "envuser")
    monkeypatch.setenv("STREAM_APP_KAFKA_SASL_PASSWORD", "envpw")
    cfg = client_security_config()
    assert cfg["sasl.username"] == "envuser" and cfg["sasl.mechanism"] == "SCRAM-SHA-512"


def test_sasl_without_credentials_is_a_config_error():
    with pytest.raises(ConfigError):
        client_security_config(KafkaSecurity(kafka_security_protocol="SASL_SSL"))
