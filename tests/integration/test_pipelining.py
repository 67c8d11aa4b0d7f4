"""HTTP/1.1 pipelining from clients: order, and no smuggling past a bad request."""

import time

from kit import RawClient, pattern, request_bytes


def test_three_pipelined_gets_in_one_send_are_answered_in_order(origin, pooled):
    o = origin()
    p = pooled()
    with RawClient(p.port) as c:
        c.send(b"".join(request_bytes("GET", o.url("/headers?n=%d" % i), o.authority) for i in (1, 2, 3)))
        targets = [c.read_response().json()["target"] for _ in range(3)]
    assert targets == ["/headers?n=1", "/headers?n=2", "/headers?n=3"]


def test_pipelined_responses_keep_order_when_the_first_is_slowest(origin, pooled):
    o = origin()
    p = pooled()
    with RawClient(p.port) as c:
        c.send(request_bytes("GET", o.url("/delay/300"), o.authority)
               + request_bytes("GET", o.url("/bytes/1"), o.authority)
               + request_bytes("GET", o.url("/bytes/2"), o.authority))
        r1, r2, r3 = c.read_response(), c.read_response(), c.read_response()
    assert r1.body == b"delayed 300"
    assert r2.body == pattern(0, 1)
    assert r3.body == pattern(0, 2)


def test_pipelined_bodies_and_bodyless_responses_in_one_send(origin, pooled):
    o = origin()
    p = pooled()
    with RawClient(p.port) as c:
        c.send(request_bytes("POST", o.url("/echo"), o.authority, body=b"first body")
               + request_bytes("HEAD", o.url("/bytes/50"), o.authority)
               + request_bytes("GET", o.url("/status/204"), o.authority)
               + request_bytes("POST", o.url("/echo"), o.authority,
                               [("Transfer-Encoding", "chunked")], b"6\r\nsecond\r\n0\r\n\r\n")
               + request_bytes("GET", o.url("/chunked/3"), o.authority))
        r1 = c.read_response()
        r2 = c.read_response("HEAD")
        r3 = c.read_response()
        r4 = c.read_response()
        r5 = c.read_response()
    assert r1.body == b"first body"
    assert r2.status == 200 and r2.body == b""
    assert r3.status == 204
    assert r4.body == b"second"
    assert r5.body == pattern(0, 3)


def test_request_pipelined_after_a_malformed_one_is_never_forwarded(origin, pooled):
    o = origin()
    p = pooled()
    bad = (b"GET %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
           % (o.url("/first").encode(), o.authority.encode()))
    smuggled = request_bytes("GET", o.url("/smuggled"), o.authority)
    with RawClient(p.port) as c:
        c.send(bad + smuggled)
        r = c.read_response()
        assert r.status == 400
        assert c.is_closed(timeout=5), "pooled kept the connection open after a malformed request"
    time.sleep(0.3)
    targets = [e["target"] for e in o.log()]
    assert not any("smuggled" in t for t in targets), targets
    assert targets == []


def test_request_pipelined_after_a_bad_chunked_body_is_never_forwarded(origin, pooled):
    o = origin()
    p = pooled()
    bad = request_bytes("POST", o.url("/echo"), o.authority, [("Transfer-Encoding", "chunked")],
                        b"5\r\nhello\r\nzz\r\nxx\r\n0\r\n\r\n")
    smuggled = request_bytes("GET", o.url("/smuggled"), o.authority)
    with RawClient(p.port) as c:
        c.send(bad + smuggled)
        try:
            r = c.read_response()
            assert r.status in (400, 502), r
        except Exception:
            pass  # a connection closed without a response is acceptable here
        assert c.is_closed(timeout=5)
    time.sleep(0.3)
    targets = [e["target"] for e in o.log()]
    assert not any("smuggled" in t for t in targets), targets
