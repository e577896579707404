"""QA F11: rule errors name the file with its directory (`config/rules/activity.yaml:27`, not
`activity.yaml:27`), a published set records an absolute source that `rules show` prints, and
the docs' "N tags in M families" match what `rules validate` prints."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from stream_app import kafka_io
from stream_app.cli.rules_cmd import command
from stream_app.rules.engine import DEFAULT_RULES
from stream_app.rules.loader import load_ruleset
from stream_app.rules_bundle import decode, encode, read_bundle

ROOT = Path(__file__).resolve().parents[3]
BAD = ("tags:\n  - id: x\n    family: activity\n    zh: a\n    en: b\n    kind: bool\n"
       "    value: 'cuont(a)'\n")


def test_an_error_names_the_file_under_the_directory_given(tmp_path: Path,
                                                           monkeypatch) -> None:
    drafts = tmp_path / "drafts"
    drafts.mkdir()
    (drafts / "bad.yaml").write_text(BAD, encoding="utf-8")
    out = CliRunner().invoke(command, ["validate", str(drafts)])     # outside the cwd
    assert out.exit_code == 1
    assert f"rules refused: {drafts / 'bad.yaml'}:7: rule 'x'" in out.output
    monkeypatch.chdir(tmp_path)                                       # inside it: relative
    out = CliRunner().invoke(command, ["validate", "drafts"])
    assert "rules refused: drafts/bad.yaml:7: rule 'x'" in out.output, out.output
    out = CliRunner().invoke(command, ["validate", str(drafts / "bad.yaml")])   # one file
    assert "rules refused: drafts/bad.yaml:7: rule 'x'" in out.output, out.output


def test_apply_records_an_absolute_source_and_show_prints_it(tmp_path: Path,
                                                            monkeypatch) -> None:
    """`rules apply ../r/thresh` used to publish `source: ../r/thresh`."""
    import shutil

    shutil.copytree(DEFAULT_RULES, tmp_path / "r" / "thresh")
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    topic: list[bytes] = []

    class Producer:
        def produce(self, topic_name: str, key: str, value: bytes) -> None:
            topic.append(value)

        def flush(self, timeout: float) -> int:
            return 0

    monkeypatch.setattr("stream_app.services.topics_admin.ensure_topic",
                        lambda *a, **k: False)
    monkeypatch.setattr("stream_app.rules_bundle.latest_bundle",
                        lambda *a, **k: decode(topic[-1]) if topic else None)
    monkeypatch.setattr(kafka_io, "make_producer", lambda *a, **k: Producer())
    out = CliRunner().invoke(command, ["apply", "../r/thresh", "--bootstrap", "fake:9092"])
    assert out.exit_code == 0, out.output
    assert decode(topic[-1])["source"] == str(tmp_path / "r" / "thresh")
    show = CliRunner().invoke(command, ["show", "--bootstrap", "fake:9092"])
    assert show.exit_code == 0, show.output
    assert show.output.startswith("version ")
    assert f"from {tmp_path / 'r' / 'thresh'} (published " in show.output
    assert "activity.yaml" in show.output


def test_a_published_bundle_names_its_files_under_its_source() -> None:
    bundle: dict[str, Any] = read_bundle(DEFAULT_RULES)
    bundle["files"]["activity.yaml"] = BAD
    from stream_app.errors import RuleError
    from stream_app.rules_bundle import compile_bundle

    with pytest.raises(RuleError, match=re.escape(f"{DEFAULT_RULES}/activity.yaml:7")):
        compile_bundle(decode(encode(bundle)))


def test_the_docs_count_the_tags_rules_validate_prints() -> None:
    """README said "33 tags in 10 families" where `rules validate` printed 35: any such
    count in the docs must be the default rule set's."""
    rs = load_ruleset(DEFAULT_RULES)
    families = len({t.family for t in rs.tags})
    out = CliRunner().invoke(command, ["validate", str(DEFAULT_RULES)])
    assert out.output.startswith(f"ok: {len(rs.tags)} tags in {families} families"), out.output
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for m in re.finditer(r"(\d+) tags in (\d+) families", doc.read_text(encoding="utf-8")):
            assert (int(m[1]), int(m[2])) == (len(rs.tags), families), (doc.name, m[0])
