"""Security helpers: Kafka SASL/TLS client settings, API bearer tokens, PII protection.

Small modules with one job each: :mod:`~stream_app.security.kafka_auth` (SASL/TLS for Faust
and confluent-kafka clients), :mod:`~stream_app.security.tokens` (constant-time bearer
tokens, tenant scoping), :mod:`~stream_app.security.pii` (keyed hashing and redaction of
personal identifiers). None of them imports faust at module level.
"""
