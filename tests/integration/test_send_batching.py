"""Sends batched through io_uring (buffers.io_uring, on by default): what a loop turn
writes goes to the kernel in one submit instead of one write(2) per send. Where the
kernel or a seccomp profile refuses io_uring, pooled says why at start and writes each
send itself; /metrics tells which way it runs."""

import os
import re
import threading

import requests

from kit import admin_get, admin_port, metric, with_admin

REFUSED_RE = re.compile(r"sends go out one write\(2\) each: io_uring (.+)")


def refusal(p):
    """The daemon's reason for not using io_uring, or None when it does."""
    m = REFUSED_RE.search(p.stderr_text())
    return m.group(1).strip() if m else None


def fetch_concurrently(p, o, proxies, clients, each):
    failures = []

    def client():
        with requests.Session() as s:
            for _ in range(each):
                r = s.get(o.url("/bytes/100"), proxies=proxies(p), timeout=10)
                if r.status_code != 200 or len(r.content) != 100:
                    failures.append(r.status_code)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures


def test_concurrent_requests_share_send_batches(pooled, origin, proxies):
    o = origin()
    p = pooled(with_admin())
    fetch_concurrently(p, o, proxies, clients=16, each=25)
    p.wait_access_log(400)
    text = admin_get(admin_port(p), "/metrics").text
    reason = refusal(p)
    if reason is not None:
        # Refused here (POOLED_TEST_IO_URING=0, an old kernel, seccomp): said, and visible.
        assert metric(text, "pooled_io_uring") == 0
        assert metric(text, "pooled_sends_total") == 0
        return
    assert metric(text, "pooled_io_uring") == 1
    sends = metric(text, "pooled_sends_total")
    batches = metric(text, "pooled_send_batches_total")
    # Each request is at least one send upstream and one back to its client, in turns of
    # their own; sixteen clients at once put several sends in most turns.
    assert sends >= 2 * 400
    assert 0 < batches < sends


def test_off_in_the_configuration_each_send_is_a_write(pooled, origin, proxies):
    o = origin()
    p = pooled(with_admin({"buffers": {"io_uring": False}}))
    assert refusal(p) == "off in the configuration"
    r = requests.get(o.url("/bytes/%d" % (4 << 20)), proxies=proxies(p), timeout=30)
    assert r.status_code == 200 and len(r.content) == 4 << 20
    fetch_concurrently(p, o, proxies, clients=4, each=10)
    text = admin_get(admin_port(p), "/metrics").text
    assert metric(text, "pooled_io_uring") == 0
    assert metric(text, "pooled_sends_total") == 0
