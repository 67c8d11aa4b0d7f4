"""CONNECT tunnels: allowed ports, HTTP-in-tunnel through the pool, opaque bytes otherwise."""

import os
import threading

from kit import RawClient, free_port, pattern, proxy_status_error, request_bytes


def connect_tunnel(port, authority, timeout=10):
    c = RawClient(port, timeout=timeout)
    c.send(b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (authority.encode(), authority.encode()))
    return c, c.read_response("CONNECT")


def test_connect_to_an_allowed_port_gives_200_and_http_reaches_the_origin(origin, pooled):
    o = origin()
    p = pooled({"connect": {"allowed_ports": [o.port]}})
    c, r = connect_tunnel(p.port, o.authority)
    with c:
        assert r.status == 200
        c.send(request_bytes("GET", "/bytes/5", o.authority))
        r = c.read_response()
        assert r.status == 200 and r.body == pattern(0, 5)
        c.send(request_bytes("POST", "/echo", o.authority, body=b"in a tunnel"))
        assert c.read_response().body == b"in a tunnel"
    assert [e["target"] for e in o.log()] == ["/bytes/5", "/echo"]


def test_http_inside_sequential_tunnels_shares_pooled_connections(origin, pooled):
    o = origin()
    p = pooled({"connect": {"allowed_ports": [o.port]}})
    for i in range(2):
        c, r = connect_tunnel(p.port, o.authority)
        with c:
            assert r.status == 200
            c.send(request_bytes("GET", "/bytes/%d" % (10 + i), o.authority))
            assert c.read_response().body == pattern(0, 10 + i)
    st = o.stats()
    assert st["requests"] == 2
    assert st["connections_accepted"] <= 1, st


def test_connect_to_a_port_not_allowed_is_denied_with_403(origin, pooled):
    o = origin()
    p = pooled({"connect": {"allowed_ports": [443]}})
    c, r = connect_tunnel(p.port, o.authority)
    c.close()
    assert r.status == 403
    assert proxy_status_error(r) == "http_request_denied"
    assert o.stats()["connections_accepted"] == 0
    rec = p.wait_access_log(1)[0]
    assert rec["method"] == "CONNECT" and rec["status"] == 403


def test_connect_to_a_refused_port_closes_the_tunnel_and_logs_connection_refused(pooled):
    # pooled answers 200 before connecting (it must sniff whether the tunnel carries plain
    # HTTP, which it serves through the pool), so a refused connect can only close the tunnel.
    port = free_port()
    p = pooled({"connect": {"allowed_ports": [port]}})
    c, r = connect_tunnel(p.port, "127.0.0.1:%d" % port)
    with c:
        if r.status == 200:
            c.send(b"\x16\x03\x01\x00\x05hello")  # opaque bytes: pooled opens the tunnel now
            assert c.read_to_close(timeout=5) == b""
            assert c.eof
        else:
            assert r.status == 502 and proxy_status_error(r) == "connection_refused"
    recs = p.wait_access_log(1, predicate=lambda rec: rec["method"] == "CONNECT")
    assert recs and recs[-1]["error"] == "connection_refused", recs


def test_binary_tunnel_is_passed_through_opaquely(echo_server, pooled):
    e = echo_server()
    p = pooled({"connect": {"allowed_ports": [e.port]}})
    c, r = connect_tunnel(p.port, "127.0.0.1:%d" % e.port)
    with c:
        assert r.status == 200
        # Looks like a TLS ClientHello: must not be parsed as HTTP.
        hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(500)
        c.send(hello)
        assert c.read_exact(len(hello)) == hello
        payload = os.urandom(4 * 1024 * 1024)
        sender = threading.Thread(target=c.send, args=(payload,))
        sender.start()
        got = c.read_exact(len(payload), timeout=30)
        sender.join(30)
        assert got == payload
    assert bytes(e.received[:len(hello)]) == hello


def test_tunnel_half_close_is_propagated(echo_server, pooled):
    e = echo_server()
    p = pooled({"connect": {"allowed_ports": [e.port]}})
    c, r = connect_tunnel(p.port, "127.0.0.1:%d" % e.port)
    with c:
        assert r.status == 200
        c.send(b"\x16last words")
        import socket
        c.sock.shutdown(socket.SHUT_WR)
        # The echo server replies, then closes when it sees our FIN through the tunnel.
        assert c.read_to_close(timeout=5) == b"\x16last words"
