"""The ``stream-app`` command line (placeholder, filled in by the foundation work)."""


def main() -> None:  # pragma: no cover - replaced soon
    raise SystemExit("stream-app: CLI not wired yet")
