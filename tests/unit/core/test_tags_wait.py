"""``stream-app tags USER --wait SECONDS`` polls Redis until the profile appears (QA38 F2: the
README's ``replay ... && sleep 2 && tags u1`` failed while make run's workers worked through
their warm-up backlog)."""

from __future__ import annotations

from click.testing import CliRunner

from stream_app.cli import tags_cmd
from stream_app.cli.tags_cmd import command, poll_profile
from stream_app.serving import store as store_mod


class LateProfile:
    """Redis holds the profile from the third read on."""

    reads = 0

    def __init__(self, url: str) -> None:
        pass

    def profile(self, tenant: str, uid: str) -> dict:
        LateProfile.reads += 1
        return {"tag:activity": "low"} if LateProfile.reads >= 3 else {}


def test_wait_polls_until_the_profile_appears(monkeypatch) -> None:
    LateProfile.reads = 0
    monkeypatch.setattr(store_mod, "ProfileStore", LateProfile)
    monkeypatch.setattr(tags_cmd, "POLL_INTERVAL_S", 0.01)
    res = CliRunner().invoke(command, ["u1", "--wait", "5", "--json"])
    assert res.exit_code == 0, res.output
    assert '"tag:activity": "low"' in res.output and LateProfile.reads == 3


def test_without_wait_one_read_and_a_clear_error(monkeypatch) -> None:
    LateProfile.reads = 0
    monkeypatch.setattr(store_mod, "ProfileStore", LateProfile)
    res = CliRunner().invoke(command, ["u1"])
    assert res.exit_code == 1 and LateProfile.reads == 1
    assert "no profile for user 'u1'" in res.output and "after waiting" not in res.output


def test_a_wait_that_runs_out_says_so() -> None:
    now = [0.0]
    got = poll_profile(dict, 2, interval_s=0.5, clock=lambda: now[0],
                       sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert got == {} and now[0] == 2.0
