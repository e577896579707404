"""Hot reload: a rule set published with `stream-app rules apply` changes tags without restart;
an invalid rule set is refused with a message naming the problem."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import event, uid

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def cli(stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stream_app", *args],
                          env={**os.environ, **stack.settings_env()}, capture_output=True,
                          text=True, timeout=120)


def test_rule_edit_applies_without_restart(stack, harness, tags_reader, tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "config" / "rules", rules)
    text = (rules / "activity.yaml").read_text()
    # policy change: one active day is already "medium"
    (rules / "activity.yaml").write_text(
        text.replace("activity_medium_days: 2 ", "activity_medium_days: 1 "))
    before = uid("before")
    t = harness.base_ts()
    harness.send("click", event(before, "page_view", t))
    [old] = tags_reader.wait_for(user_id=before, tag_id="activity")
    assert old["new"] == "low"
    try:
        out = cli(stack, "rules", "apply", str(rules))
        assert out.returncode == 0, out.stderr
        assert "published rule set" in out.stdout
        after = uid("after")

        def reloaded():
            # keep sending fresh users until one is tagged under the new version
            u = f"{after}-{len(tags_reader.records)}"
            harness.send("click", event(u, "page_view", t + 1000))
            got = [r for r in tags_reader.where(tag_id="activity")
                   if r["user_id"].startswith(after) and r["new"] == "medium"]
            return got or None

        from tests.helpers import wait_until
        [new, *_] = wait_until(reloaded, timeout=60, interval=1.0, what="hot reload")
        assert new["rule_version"] != old["rule_version"]
        # backfill: the user tagged before the change is re-evaluated from retained state
        [back] = tags_reader.wait_for(timeout=60, user_id=before, tag_id="activity",
                                      new="medium")
        assert back["old"] == "low" and back["rule_version"] == new["rule_version"]
    finally:
        restore = cli(stack, "rules", "apply", str(ROOT / "config" / "rules"), "--allow-removal")
        assert restore.returncode == 0, restore.stderr


def test_invalid_rule_set_is_refused_with_reason(stack, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("tags:\n  - id: x\n    family: activity\n    zh: a\n    en: b\n"
                   "    kind: enum\n    cases:\n"
                   "      - {value: y, when: \"count(a, 30d) >>> 3\"}\n")
    out = cli(stack, "rules", "apply", str(bad))
    assert out.returncode != 0
    assert "rules refused" in out.stderr and "bad.yaml" in out.stderr and "'x'" in out.stderr


def test_rules_diff_shadows_a_new_rule_set_over_retained_state(stack, harness, tags_reader,
                                                               tmp_path):
    """`rules diff` reports who would change before a rule set goes live."""
    u = uid("diff")
    t = harness.base_ts()
    harness.send("click", event(u, "page_view", t))
    tags_reader.wait_for(user_id=u, tag_id="activity", new="low")
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "config" / "rules", rules)
    text = (rules / "activity.yaml").read_text()
    (rules / "activity.yaml").write_text(
        text.replace("activity_medium_days: 2 ", "activity_medium_days: 1 "))
    out = cli(stack, "rules", "diff", str(rules), "--json")
    assert out.returncode == 0, out.stderr
    import orjson

    doc = orjson.loads(out.stdout)
    assert doc["users"] >= 1 and doc["changed_users"] >= 1
    assert doc["tags"]["activity"]["transitions"].get("low -> medium", 0) >= 1
    # the text form says the same, one line per tag
    text_out = cli(stack, "rules", "diff", str(rules))
    assert text_out.returncode == 0, text_out.stderr
    assert f"{doc['changed_users']:,} would change" in text_out.stdout
    [line] = [ln for ln in text_out.stdout.splitlines() if ln.split()[:1] == ["activity"]]
    assert "low -> medium" in line

    # once published, the rule set is the live one: diffing it again changes nobody, and the
    # local directory is now the change
    try:
        assert cli(stack, "rules", "apply", str(rules)).returncode == 0
        again = orjson.loads(cli(stack, "rules", "diff", str(rules), "--json").stdout)
        assert again["old_version"] == again["new_version"] == doc["new_version"]
        assert again["old_source"] == f"published from {rules}"
        assert again["changed_users"] == 0 and again["tags"] == {}
        back = orjson.loads(cli(stack, "rules", "diff", str(ROOT / "config" / "rules"),
                                "--json").stdout)
        assert back["tags"]["activity"]["transitions"].get("medium -> low", 0) >= 1
    finally:
        restore = cli(stack, "rules", "apply", str(ROOT / "config" / "rules"), "--allow-removal")
        assert restore.returncode == 0, restore.stderr


def test_the_api_follows_a_published_rule_set_by_default(stack, tmp_path):
    """`stream-app api` (default options) switches its tag catalog with the workers: a tag
    added by `rules apply` is listed and can be queried as a segment within seconds."""
    import httpx

    from stream_app.services.process import ManagedProcess, free_port, wait_for
    from tests.helpers import wait_until

    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "config" / "rules", rules)
    (rules / "zz_extra.yaml").write_text(
        "tags:\n  - {id: it_follow_probe, family: consumption, zh: 探针, en: Probe,"
        " kind: bool, value: \"count(order_paid) > 99\"}\n")
    port = free_port()
    api = ManagedProcess("api", [sys.executable, "-m", "stream_app", "api", "--port", str(port),
                                 "--log-level", "warning"], log=tmp_path / "api.log",
                         env={**stack.settings_env(), "STREAM_APP_API_TOKEN": "t"}, cwd=ROOT)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10,
                          headers={"Authorization": "Bearer t"})
    try:
        wait_for(lambda: client.get("/healthz").status_code == 200, 60, "stream-app api",
                 proc=api.proc, log=api.log)

        def tag_ids() -> set[str]:
            return {t["id"] for t in client.get("/v1/tags").json()["tags"]}

        assert "it_follow_probe" not in tag_ids()
        assert cli(stack, "rules", "apply", str(rules)).returncode == 0
        wait_until(lambda: "it_follow_probe" in tag_ids(), 30, interval=0.5,
                   what="the API's catalog to follow the published rule set")
        got = client.get("/v1/tenants/default/segments/size",
                         params={"expr": "it_follow_probe = true"})
        assert got.status_code == 200, got.text
    finally:
        client.close()
        api.stop()
        restore = cli(stack, "rules", "apply", str(ROOT / "config" / "rules"), "--allow-removal")
        assert restore.returncode == 0, restore.stderr


def test_a_rule_set_that_drops_tags_is_not_published_without_allow_removal(stack, tmp_path):
    """One file of the rules directory given alone would remove every other tag from every
    user (found by exploratory testing in session 23): refused, nothing published."""
    import shutil

    from stream_app.rules_bundle import latest_bundle

    one = tmp_path / "activity.yaml"
    shutil.copy(ROOT / "config" / "rules" / "activity.yaml", one)
    before = latest_bundle(stack.bootstrap)
    out = cli(stack, "rules", "apply", str(one))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "tags the workers run" in out.stderr and "--allow-removal" in out.stderr
    assert "Nothing was published" in out.stderr and "Traceback" not in out.stderr
    after = latest_bundle(stack.bootstrap)
    assert (after or {}).get("version") == (before or {}).get("version")
