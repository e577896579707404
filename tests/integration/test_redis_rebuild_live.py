"""`redis-rebuild --live` while events flow: the running worker re-projects its own users, in
order with its live writes, so Redis ends equal to the table. A rebuild that writes Redis
itself (without `--live`) races with the worker: measured during a 30-day replay, 171 and
658 users stayed different from the table for good (older values written over newer ones,
users created between the table's read and the flush left partial)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import orjson
import pytest

from stream_app.cli.rebuild_cmd import stored_scores
from stream_app.kafka_io import make_producer
from stream_app.serving import keys
from stream_app.serving.full_state import TICKS_TOPIC
from tests.faults.workload import scrape
from tests.helpers import DAY, event, uid, wait_until

pytestmark = pytest.mark.integration
CHANNELS = ["douyin", "baidu_sem", "wechat_oa", "bilibili"]


def cli(stack, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """Run a stream-app command against the stack (``env``: settings to override)."""
    return subprocess.run([sys.executable, "-m", "stream_app", *args],
                          env={**os.environ, **stack.settings_env(), **env},
                          capture_output=True, text=True, timeout=timeout)


def test_live_rebuild_while_events_flow_leaves_redis_equal_to_the_table(stack, harness,
                                                                        tags_reader):
    t = harness.base_ts()
    users = [uid(f"live-rb{i}") for i in range(60)]
    for u in users:
        harness.send("click", event(u, "page_view", t))
    tags_reader.wait_for(timeout=60, user_id=users[-1], tag_id="activity")
    # many keys make the deletion take a while (as with a big projection): the workers'
    # writes must not interleave with it (an integer id issued by the old counter and its
    # mapping deleted after it left users that "map to another user" for good)
    import redis

    r = redis.Redis.from_url(stack.redis.url)
    pipe = r.pipeline(transaction=False)
    for i in range(150_000):
        pipe.set(f"sa:filler:{i}", b"x")
    pipe.execute()
    before = sum(scrape(w.url, "stream_app_reprojected_users_total") for w in stack.workers)
    stop = threading.Event()
    sent: list[str] = []

    def flow() -> None:
        # tag changes all through the rebuild: active days, channels, new users
        producer = make_producer(stack.bootstrap)
        i = 0
        while not stop.is_set():
            u = users[i % len(users)] if i % 5 else uid(f"live-rb-new{i}")
            ev = event(u, "course_view", t + (i // len(users) + 1) * DAY // 3 + i,
                       props={"channel": CHANNELS[i % len(CHANNELS)]})
            producer.produce("events.click", key=u, value=orjson.dumps(ev))
            producer.poll(0)
            sent.append(u)
            i += 1
            stop.wait(0.004)
        producer.flush(30)

    th = threading.Thread(target=flow, daemon=True)
    th.start()
    try:
        out = cli(stack, "redis-rebuild", "--live")
    finally:
        stop.set()
        th.join(60)
    assert out.returncode == 0, out.stderr
    assert "re-projected" in out.stdout
    assert len(sent) > 100   # events flowed while it ran
    after = sum(scrape(w.url, "stream_app_reprojected_users_total") for w in stack.workers)
    assert after - before >= len(users)
    # the last event sent is processed, then Redis equals the table (once its writes land)
    tags_reader.wait_for(timeout=60, user_id=sent[-1])
    checks: list[subprocess.CompletedProcess] = []

    def equal() -> bool:
        checks.append(cli(stack, "redis-rebuild", "--check-only"))
        return checks[-1].returncode == 0

    try:
        wait_until(equal, timeout=30, interval=2.0, what="Redis equal to the table")
    except AssertionError as exc:   # say which users differ, and what the rebuild said
        raise AssertionError(f"{exc}\n--- last check:\n{checks[-1].stdout[-4000:]}"
                             f"{checks[-1].stderr[-2000:]}\n--- the rebuild:\n"
                             f"{out.stdout}{out.stderr[-3000:]}") from None
    assert " 0 differences" in checks[-1].stdout
    # the score fields too (QA40 F2: the re-projection wrote none, so every user lost its
    # scores and layers, and --check-only, comparing the tags only, said 0 differences)
    for u in users:
        hashed = r.hgetall(keys.user_key("default", u))
        assert_scores_follow_the_tags(u, hashed)


def assert_scores_follow_the_tags(u: str, hashed: dict) -> dict:
    """The user hash ``hashed`` holds both score fields, each of the rules or a model, with
    the layer of its layer tag (``intent``; ``at_risk``: true is high); returns them."""
    scores = stored_scores(hashed)
    assert set(scores) == {"convert", "at_risk"}, (u, hashed)
    intent = orjson.loads(hashed.get(b"tag:intent", b'"low"'))
    at_risk = orjson.loads(hashed.get(b"tag:at_risk", b"false"))
    assert scores["convert"][1] == intent, (u, scores)
    assert scores["at_risk"][1] == ("high" if at_risk is True else "low"), (u, scores)
    assert all(isinstance(v[0], float) and isinstance(v[2], str) for v in scores.values())
    return scores


def test_a_rebuild_into_a_fresh_redis_writes_the_scores_and_layers(stack, harness,
                                                                  tags_reader):
    """QA40 F2, the command writing Redis itself (a Redis that lost its data: here another
    database of the stack's server, which the worker does not write): every user had its
    tags back but no score field (the API served ``scores``, ``layers`` and ``sources``
    empty), and ``--check-only`` said 0 differences. Now each user's score fields are
    rewritten (scored as of its state's clock: its layers and sources are the live ones),
    and a missing one is a difference."""
    import redis

    t = harness.base_ts()
    users = [uid(f"rb-scores{i}") for i in range(4)]
    journeys = [["course_view"], ["course_view", "trial_booked", "course_view", "cart_add"],
                ["lesson_attended"], ["course_view", "trial_booked"]]
    for u, journey in zip(users, journeys, strict=True):
        for i, etype in enumerate(journey):
            stream = "study" if etype.startswith("lesson") else "click"
            harness.send(stream, event(u, etype, t + i * 60_000))
    live = redis.Redis.from_url(stack.redis.url)
    wait_until(lambda: all(live.hexists(keys.user_key("default", u), "score:at_risk")
                           for u in users), timeout=60, what="the users' score fields")
    fresh_url = stack.redis.url.rsplit("/", 1)[0] + "/7"
    fresh = redis.Redis.from_url(fresh_url)
    fresh.flushdb()
    out = cli(stack, "redis-rebuild", STREAM_APP_REDIS_URL=fresh_url)
    assert out.returncode == 0, out.stderr
    assert "rebuilt" in out.stdout
    assert "score fields as of each user's clock, with convert: " in out.stderr
    for u in users:
        was = assert_scores_follow_the_tags(u, live.hgetall(keys.user_key("default", u)))
        now = assert_scores_follow_the_tags(u, fresh.hgetall(keys.user_key("default", u)))
        assert {t: v[1:] for t, v in now.items()} == {t: v[1:] for t, v in was.items()}, u
    assert stored_scores(fresh.hgetall(keys.user_key("default", users[1])))["convert"][1] \
        == "high"                                          # a hot lead stays one
    out = cli(stack, "redis-rebuild", "--check-only", STREAM_APP_REDIS_URL=fresh_url)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert " 0 differences" in out.stdout
    # the check sees a lost score field (it compared the tags only)
    fresh.hdel(keys.user_key("default", users[2]), "score:at_risk")
    out = cli(stack, "redis-rebuild", "--check-only", STREAM_APP_REDIS_URL=fresh_url)
    assert out.returncode == 1, out.stdout[-3000:]
    assert f"{users[2]}: score:at_risk missing" in out.stdout
    fresh.flushdb()


def ticks_since(stack, ends: dict[int, int]) -> list[bytes]:
    """The values of the records on the ticks topic from ``ends`` (offsets per partition)
    to its end now."""
    from confluent_kafka import Consumer, TopicPartition

    from stream_app.kafka_io import end_offsets

    now = end_offsets(stack.bootstrap, TICKS_TOPIC, stack.partitions)
    c = Consumer({"bootstrap.servers": stack.bootstrap, "group.id": "rb-peek",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(TICKS_TOPIC, p, ends[p]) for p in now if now[p] > ends[p]])
    values: list[bytes] = []
    try:
        while sum(now[p] - ends[p] for p in now) > len(values):
            msgs = c.consume(1000, timeout=5)
            assert msgs, ("the ticks topic ends short", now, ends, len(values))
            values += [m.value() for m in msgs if not m.error() and m.offset() < now[m.partition()]]
    finally:
        c.close()
    return values


def worker_writes_redis(stack, harness, name: str) -> None:
    """A new user's event reaches Redis while nothing holds the worker's writes (a held
    worker writes again only after ``LIVE_PAUSE_MAX_S``, 120 s)."""
    import redis

    r = redis.Redis.from_url(stack.redis.url)
    u = uid(name)
    harness.send("click", event(u, "course_view", harness.base_ts()))
    wait_until(lambda: r.hexists(keys.user_key("default", u), "tag:activity"), timeout=60,
               what=f"{u} in Redis (the worker's writes not held)")


def test_a_wrong_app_id_is_reported_before_anything_is_asked_of_the_workers(
        stack, harness, tags_reader):
    """QA40 F4: ``redis-rebuild --live`` with a wrong ``STREAM_APP_APP_ID`` sent its begin
    requests to the ticks topic (shared by every app on the broker), the real worker held
    its Redis writes for 2 minutes, and the command ended with "did not process 32,279 of
    the rebuild's requests" instead of the missing changelog. Now: exit 1 with the
    changelog, nothing on the ticks topic, the worker writes on."""
    from stream_app.kafka_io import end_offsets

    u = uid("live-rb-wrong-app")
    harness.send("click", event(u, "page_view", harness.base_ts()))
    tags_reader.wait_for(timeout=60, user_id=u, tag_id="activity")
    before = end_offsets(stack.bootstrap, TICKS_TOPIC, stack.partitions)
    out = cli(stack, "redis-rebuild", "--live", "--timeout", "20", timeout=120,
              STREAM_APP_APP_ID="nope")
    assert out.returncode == 1, out.stdout + out.stderr
    assert ("Error: cannot read the users table's changelog nope-users-changelog: it is not "
            "on this broker. Is STREAM_APP_APP_ID right") in out.stderr
    assert "waiting for the workers" not in out.stderr and "Traceback" not in out.stderr
    assert not [v for v in ticks_since(stack, before) if v and v.startswith(b"reproject-")]
    worker_writes_redis(stack, harness, "live-rb-wrong-app-new")


def test_live_rebuild_without_workers_fails_before_deleting_anything(stack, harness,
                                                                     tags_reader):
    """An app whose workers ran (its changelog is there, its group committed on the ticks
    topic) but are stopped: no worker answers the rebuild's first requests, the command
    says so within its timeout, counting its own requests only, and the projection is
    still there (it used to be deleted first). The requests name their app: the stack's
    worker, of another app, does not hold its writes for them (QA40 F4)."""
    import redis
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    from stream_app.kafka_io import committed_offsets, end_offsets

    idle = f"rb-idle-{uid('a')[-6:]}"
    admin = AdminClient({"bootstrap.servers": stack.bootstrap})
    topic = f"{idle}-users-changelog"
    admin.create_topics([NewTopic(topic, stack.partitions, 1)])[topic].result(30)
    ends = end_offsets(stack.bootstrap, TICKS_TOPIC, stack.partitions)
    c = Consumer({"bootstrap.servers": stack.bootstrap, "group.id": idle,
                  "enable.auto.commit": False})
    try:   # what its stopped workers had processed
        c.commit(offsets=[TopicPartition(TICKS_TOPIC, p, end) for p, end in ends.items()],
                 asynchronous=False)
    finally:
        c.close()
    u = uid("live-rb-none")
    harness.send("click", event(u, "page_view", harness.base_ts()))
    tags_reader.wait_for(timeout=60, user_id=u, tag_id="activity")
    r = redis.Redis.from_url(stack.redis.url)
    keys_before = sum(1 for _ in r.scan_iter(match="sa:*", count=1000))
    out = cli(stack, "redis-rebuild", "--live", "--timeout", "5",
              timeout=120, STREAM_APP_APP_ID=idle)
    assert out.returncode == 1, out.stdout + out.stderr
    n = stack.partitions
    assert (f"the workers did not process {n} of the rebuild's {n} requests: none for 5 s: "
            f"are workers running (group '{idle}')? nothing was deleted") in out.stderr
    assert "deleted" not in out.stderr.replace("nothing was deleted", "")
    assert sum(1 for _ in r.scan_iter(match="sa:*", count=1000)) >= keys_before > 0
    # the stack's worker has read the requests (its group committed past them), and let
    # them be
    sent = end_offsets(stack.bootstrap, TICKS_TOPIC, stack.partitions)
    group = stack.settings().app_id
    wait_until(lambda: all(committed_offsets(stack.bootstrap, group, TICKS_TOPIC, n)[p]
                           >= sent[p] for p in range(n)),
               timeout=60, what="the stack's worker past the rebuild's requests")
    log = "\n".join(w.process.log.read_text(errors="replace") for w in stack.workers)
    assert f"@{idle}" not in log
    worker_writes_redis(stack, harness, "live-rb-none-new")


def test_rebuild_of_an_app_with_no_changelog_says_so(stack):
    out = cli(stack, "redis-rebuild", "--check-only", timeout=120,
              STREAM_APP_APP_ID="no-such-app")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "cannot read the users table's changelog no-such-app" in out.stderr
    assert "Traceback" not in out.stderr


def test_rebuild_without_redis_says_so_before_asking_the_workers(stack):
    out = cli(stack, "redis-rebuild", "--live", timeout=120,
              STREAM_APP_REDIS_URL="redis://127.0.0.1:1/0")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in out.stderr
    assert "Traceback" not in out.stderr and "waiting for the workers" not in out.stderr


def test_a_partition_setting_that_differs_from_the_changelog_stops_before_anything(
        stack, harness, tags_reader):
    """``STREAM_APP_PARTITIONS`` below the topic's partition count made ``--live`` delete the
    whole projection and rewrite only the users of the partitions it read (exit 0; found by
    exploratory testing in session 23); ``rules diff`` covered part of the users. Both now
    stop at once, and the projection is untouched."""
    import redis

    u = uid("rb-parts")
    harness.send("click", event(u, "page_view", harness.base_ts()))
    tags_reader.wait_for(timeout=60, user_id=u, tag_id="activity")
    r = redis.Redis.from_url(stack.redis.url)
    keys_before = sum(1 for _ in r.scan_iter(match="sa:*", count=1000))
    fewer = str(stack.partitions - 1)
    for args in (("redis-rebuild", "--live", "--timeout", "20"),
                 ("rules", "diff", "config/rules")):
        out = cli(stack, *args, timeout=120, STREAM_APP_PARTITIONS=fewer)
        assert out.returncode == 1, (args, out.stdout + out.stderr)
        assert (f"has {stack.partitions} partitions but STREAM_APP_PARTITIONS is {fewer}"
                in out.stderr), (args, out.stderr)
        assert "Traceback" not in out.stderr
    assert sum(1 for _ in r.scan_iter(match="sa:*", count=1000)) >= keys_before > 0
