"""Upgrade (WebSocket): after a 101 the connection is a raw tunnel both ways, and the
upstream connection that carried it is never handed to another request."""

from kit import RawClient, request_bytes


def upgrade_request(o):
    return request_bytes("GET", o.url("/ws"), o.authority,
                         headers=[("Connection", "Upgrade"), ("Upgrade", "websocket")])


def test_a_101_turns_the_connection_into_a_raw_tunnel(origin, pooled):
    o = origin()
    p = pooled()
    with RawClient(p.port) as c:
        c.send(upgrade_request(o))
        head = c.read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        assert b"upgrade: websocket" in head.lower()
        assert b"connection: upgrade" in head.lower()
        for message in (b"\x81\x05hello", b"binary \x00\xff bytes", b"x" * 100000):
            c.send(message)
            assert c.read_exact(len(message)) == message
    entries = p.wait_access_log(1)
    assert entries[-1]["status"] == 101


def test_the_upgraded_upstream_connection_is_never_pooled(origin, pooled):
    o = origin()
    p = pooled()
    with RawClient(p.port) as c:
        c.send(upgrade_request(o))
        assert c.read_until(b"\r\n\r\n").startswith(b"HTTP/1.1 101")
        c.send(b"ping")
        assert c.read_exact(4) == b"ping"
        # While the tunnel is open, a plain request needs a connection of its own.
        with RawClient(p.port) as other:
            other.send(request_bytes("GET", o.url("/bytes/3"), o.authority))
            assert other.read_response().status == 200
        assert o.stats()["connections_accepted"] == 2


def test_an_upgrade_refused_by_the_origin_is_an_ordinary_response(origin, pooled):
    o = origin()
    p = pooled()
    with RawClient(p.port) as c:
        # /bytes does not upgrade: the answer is a plain 200 and the connection goes on.
        c.send(request_bytes("GET", o.url("/bytes/4"), o.authority,
                             headers=[("Connection", "Upgrade"), ("Upgrade", "websocket")]))
        r = c.read_response()
        assert r.status == 200 and len(r.body) == 4
        c.send(request_bytes("GET", o.url("/bytes/2"), o.authority))
        assert c.read_response().status == 200
