"""The upstream connection pool: limits, queueing, reuse, and stale-connection safety."""

import random
import threading
import time

import requests

from kit import RawClient, pattern, proxy_status_error, request_bytes, wait_until


def concurrent_requests(p, o, paths, timeout=20):
    """Sends each path on its own client connection at (nearly) the same instant."""
    results = [None] * len(paths)
    barrier = threading.Barrier(len(paths))

    def run(i, path):
        try:
            with RawClient(p.port, timeout=timeout) as c:
                barrier.wait(5)
                start = time.monotonic()
                c.send(request_bytes("GET", o.url(path), o.authority))
                r = c.read_response(timeout=timeout)
                results[i] = (r, time.monotonic() - start)
        except Exception as e:  # reported by the caller
            results[i] = (e, None)

    threads = [threading.Thread(target=run, args=(i, path)) for i, path in enumerate(paths)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 10)
    return results


def test_full_pool_and_full_queue_reject_with_503_connection_limit_reached(origin, pooled):
    o = origin()
    p = pooled({"pool": {"max_connections_per_host": 2, "max_idle_per_host": 2, "max_pending": 2, "queue_timeout": "1s"}})
    results = concurrent_requests(p, o, ["/delay/1500"] * 6)
    errors = [r for r, _ in results if isinstance(r, Exception)]
    assert not errors, errors
    statuses = sorted(r.status for r, _ in results)
    assert set(statuses) <= {200, 503}, statuses
    ok = [r for r, _ in results if r.status == 200]
    rejected = [r for r, _ in results if r.status == 503]
    # 2 in flight, 2 queued (time out after 1 s, before a slot frees at 1.5 s), 2 rejected at once.
    assert len(ok) >= 1 and len(rejected) >= 1, statuses
    assert len(ok) <= 2, statuses
    for r in rejected:
        assert proxy_status_error(r) == "connection_limit_reached", r.headers
    st = o.stats()
    assert st["connections_peak"] <= 2, st
    assert st["requests"] == len(ok), st
    recs = p.wait_access_log(6)
    assert sum(1 for r in recs if r["error"] == "connection_limit_reached") == len(rejected)


def test_queued_requests_are_served_when_a_connection_frees(origin, pooled):
    o = origin()
    p = pooled({"pool": {"max_connections_per_host": 2, "max_idle_per_host": 2, "max_pending": 10, "queue_timeout": "10s"}})
    results = concurrent_requests(p, o, ["/delay/300"] * 4)
    errors = [r for r, _ in results if isinstance(r, Exception)]
    assert not errors, errors
    assert [r.status for r, _ in results] == [200] * 4
    st = o.stats()
    assert st["connections_accepted"] <= 2, st
    assert st["connections_peak"] <= 2, st
    recs = p.wait_access_log(4)
    waited = [r for r in recs if (r["pool_wait_ms"] or 0) >= 100]
    assert len(waited) >= 2, [r["pool_wait_ms"] for r in recs]
    assert sum(1 for r in recs if r["reused"]) >= 2


def test_origin_idle_close_races_cause_no_failed_requests(origin, pooled):
    o = origin("--idle-close-ms", "200")
    p = pooled()
    failures = []
    counts = [0] * 4

    def client(idx):
        rnd = random.Random(idx)
        s = requests.Session()
        s.proxies = {"http": p.proxy_url}
        for i in range(50):
            try:
                r = s.get(o.url("/bytes/%d" % (i + 1)), timeout=10)
                if r.status_code != 200 or r.content != pattern(0, i + 1):
                    failures.append((idx, i, r.status_code, r.headers.get("Proxy-Status")))
            except Exception as e:
                failures.append((idx, i, repr(e)))
            counts[idx] += 1
            time.sleep(rnd.uniform(0.150, 0.250))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(counts) == 200
    assert failures == [], failures
    assert o.stats()["requests"] >= 200


def test_sequential_requests_after_origin_idle_close_succeed(origin, pooled):
    o = origin("--idle-close-ms", "100")
    p = pooled()
    s = requests.Session()
    s.proxies = {"http": p.proxy_url}
    for i in range(5):
        r = s.get(o.url("/bytes/%d" % (i + 1)), timeout=10)
        assert r.status_code == 200 and len(r.content) == i + 1
        time.sleep(0.3)
    # Each request found its previous origin connection closed.
    assert o.stats()["connections_accepted"] >= 5


def post_with_pauses(p, o, plan):
    s = requests.Session()
    s.proxies = {"http": p.proxy_url}
    for i, pause in enumerate(plan):
        time.sleep(pause)
        body = b"post %d" % i
        r = s.post(o.url("/echo"), data=body, timeout=10)
        assert r.status_code == 200, (i, r.status_code, r.headers)
        assert r.content == body
    recs = p.wait_access_log(len(plan))
    assert [r["status"] for r in recs] == [200] * len(plan)
    return recs


KEEPALIVE_PLAN = [0, 0.2, 1.5, 0.2, 1.5, 1.5]  # pauses before each POST


def test_origin_keep_alive_timeout_hint_retires_idle_connections(origin, pooled):
    # The origin announces timeout=1 but never actually closes: only the hint can make pooled
    # stop reusing a connection idle for 1.5 s (timeout 1 s - keepalive_margin 300 ms = 700 ms).
    o = origin("--keepalive-timeout-header", "1")
    p = pooled({"pool": {"keepalive_margin": "300ms"}})
    recs = post_with_pauses(p, o, KEEPALIVE_PLAN)
    reused = [r["reused"] for r in recs]
    assert reused == [False, True, False, True, False, False], reused
    assert o.stats()["connections_accepted"] == 4


def test_origin_closing_at_its_hinted_keep_alive_timeout_causes_no_failures(origin, pooled):
    # POST is not replayable: sending it on a connection the origin already closed would fail.
    o = origin("--keepalive-timeout-header", "1", "--idle-close-ms", "1000")
    p = pooled({"pool": {"keepalive_margin": "300ms"}})
    recs = post_with_pauses(p, o, KEEPALIVE_PLAN)
    assert all(r["retries"] == 0 for r in recs), [r["retries"] for r in recs]
    reused = [r["reused"] for r in recs]
    assert reused[2] is False and reused[4] is False and reused[5] is False, reused


def test_max_requests_per_connection_rotates_origin_connections(origin, pooled):
    o = origin()
    p = pooled({"pool": {"max_requests_per_connection": 5}})
    s = requests.Session()
    s.proxies = {"http": p.proxy_url}
    for i in range(20):
        r = s.get(o.url("/bytes/8"), timeout=10)
        assert r.status_code == 200
    assert o.stats()["connections_accepted"] >= 4
    recs = p.wait_access_log(20)
    assert max(r["upstream_conn_requests"] for r in recs) <= 5


def test_origin_connection_close_is_honoured(origin, pooled):
    o = origin("--max-requests-per-conn", "3")
    p = pooled()
    s = requests.Session()
    s.proxies = {"http": p.proxy_url}
    for i in range(10):
        r = s.post(o.url("/echo"), data=b"n%d" % i, timeout=10)
        assert r.status_code == 200 and r.content == b"n%d" % i
    assert o.stats()["connections_accepted"] >= 4


def test_idle_pooled_connections_are_closed_after_idle_timeout(origin, pooled):
    o = origin()
    p = pooled({"pool": {"idle_timeout": "500ms"}})
    r = requests.get(o.url("/bytes/1"), proxies={"http": p.proxy_url}, timeout=10)
    assert r.status_code == 200
    assert o.stats()["connections_open"] == 1
    assert wait_until(lambda: o.stats()["connections_open"] == 0, timeout=5), o.stats()


def test_distinct_origins_get_distinct_pools(origin, pooled):
    a, b = origin(), origin()
    p = pooled({"pool": {"max_connections_per_host": 1, "max_idle_per_host": 1}})
    s = requests.Session()
    s.proxies = {"http": p.proxy_url}
    for _ in range(3):
        assert s.get(a.url("/bytes/1"), timeout=10).status_code == 200
        assert s.get(b.url("/bytes/2"), timeout=10).status_code == 200
    assert a.stats()["connections_accepted"] == 1 and a.stats()["requests"] == 3
    assert b.stats()["connections_accepted"] == 1 and b.stats()["requests"] == 3
