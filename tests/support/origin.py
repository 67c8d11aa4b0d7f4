#!/usr/bin/python3
"""A deliberately misbehaving HTTP/1.1 test origin for pooled's integration tests.

Raw sockets, one thread per connection (blocking I/O), so every byte on the wire
is under the test's control. Started as

    /usr/bin/python3 tests/support/origin.py --port 0 [options]

it prints ``PORT <n>`` as its first stdout line once listening.

Endpoints (query parameters allowed; HEAD is accepted wherever GET is and gets
the same head without a body):

  GET /bytes/N                 N bytes, Content-Length (pattern: ALPHABET[i % 64])
  GET /chunked/N[?chunk=S]     N bytes, Transfer-Encoding: chunked (chunks of S, default 16 KiB)
  GET /close-delimited/N       N bytes, no framing, connection closed afterwards
  GET /reset-after/N           Content-Length 2N, sends N bytes then RST (SO_LINGER 0)
  GET /reset-before-head[?reused_only=1]
                               reads the request, then RST before any response byte;
                               reused_only=1: only on a connection that already served a
                               request (the first request on a connection gets 200 "fresh")
  GET /trickle/N?interval_ms=M N bytes (Content-Length) one byte every M ms (default 100)
  GET /paced/N?chunk=S&interval_ms=M
                               N bytes (Content-Length) in writes of S bytes (default 32 KiB)
                               every M ms (default 100): a slow stream of large writes
  GET /delay/MS                answers 200 after MS milliseconds
  GET /hang                    reads the request, never answers (waits for the peer to close)
  GET /status/CODE             that status; 1xx/204/304 without body, others a short body
  GET /headers                 the request head as JSON: method, target, version,
                               headers = ordered [name, value] pairs, case preserved
  POST|PUT /echo[?discard=1]   echoes the body (Content-Length or chunked request body);
                               X-Received-Bytes: n. discard=1: count only, reply with the count.
                               Expect: 100-continue is answered with an interim 100.
  POST|PUT /answer-early/CODE[?read=N][&reset=1]
                               reads N bytes of the body (default 0), answers CODE with
                               Connection: close without reading the rest, and closes:
                               the unread body makes the kernel reset the connection, so
                               the peer's further writes fail; reset=1: RST (SO_LINGER 0).
  GET /keepalive-hint/N        answers with Keep-Alive: timeout=N
  GET /large-headers/N         a response whose header section is about N bytes
  GET /ws                      Upgrade: websocket -> 101, then echoes raw bytes until EOF
  GET /raw?b=B64[&then_ms=M&then=B64][&close=1]
                               writes exactly the bytes B64 decodes to (URL-safe base64,
                               padding optional), whatever the method (HEAD too); with
                               then=, waits M ms (default 100) and writes those bytes as
                               well; close=1 then closes (FIN). Else the connection stays
                               open and its next request is read as usual.

Options:
  --idle-close-ms N            close keep-alive connections idle for N ms between requests
                               (FIN, then a short look for a request that crossed it:
                               counted in idle_closes and idle_close_races). A new
                               connection waits for its first request without this timer,
                               as servers' header timeouts are long.
  --max-requests-per-conn N    Connection: close after N requests on one connection
  --keepalive-timeout-header N send Keep-Alive: timeout=N on every response
  --tls-cert F --tls-key F     serve HTTPS (TLS 1.2+, session tickets and ids on)
  --tls-client-ca F            require a client certificate signed by this CA (mTLS)
  --tls-close-notify           an idle close sends close_notify first (else a bare FIN)
  /__stats then also counts tls_full_handshakes, tls_resumed_handshakes (data-plane
  connections only) and tls_handshake_failures, and lists in tls_server_names the SNI
  each data-plane connection sent (null: none), oldest first, the last 1000.

Control plane (same port; never counted, and a connection whose first request is a
control request is not counted as a connection either):
  GET /__stats   {connections_accepted, connections_open, connections_peak,
                  requests, requests_in_flight, requests_by_path,
                  idle_closes, idle_close_races}
                 idle_close_races: idle closes that a request arrived for anyway (the
                 keep-alive race a proxy must absorb).
                 connections_peak: most connections open at once among those whose
                 first request was a data request (sampled when that request arrives).
  GET /__log     list of request heads {method, target, version, headers, conn, conn_request}
  POST /__reset  clears counters and the log (connections_open is kept; peak = data connections open now)
"""

import argparse
import base64
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
assert len(ALPHABET) == 64
BLOCK = (ALPHABET * (1024 * 1024 // 64))  # 1 MiB, aligned to the pattern period
BLOCK_VIEW = memoryview(BLOCK)
MAX_HEAD = 256 * 1024

REASONS = {
    100: "Continue", 101: "Switching Protocols", 200: "OK", 201: "Created", 202: "Accepted",
    204: "No Content", 206: "Partial Content", 301: "Moved Permanently", 302: "Found",
    304: "Not Modified", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout", 413: "Content Too Large",
    426: "Upgrade Required", 429: "Too Many Requests", 500: "Internal Server Error",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
}


def pattern(offset, n):
    """The bytes the origin sends at body offset `offset` (for test checks)."""
    out = bytearray()
    while n > 0:
        start = offset % len(BLOCK)
        take = min(n, len(BLOCK) - start)
        out += BLOCK_VIEW[start:start + take]
        offset += take
        n -= take
    return bytes(out)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.connections_accepted = 0
        self.connections_open = 0
        self.connections_peak = 0
        self.requests = 0
        self.requests_in_flight = 0
        self.requests_by_path = {}
        self.log = []
        self.tls_full_handshakes = 0
        self.tls_resumed_handshakes = 0
        self.tls_handshake_failures = 0
        self.tls_server_names = []
        self.idle_closes = 0
        self.idle_close_races = 0

    def snapshot(self):
        with self.lock:
            return {
                "connections_accepted": self.connections_accepted,
                "connections_open": self.connections_open,
                "connections_peak": self.connections_peak,
                "requests": self.requests,
                "requests_in_flight": self.requests_in_flight,
                "requests_by_path": dict(self.requests_by_path),
                "tls_full_handshakes": self.tls_full_handshakes,
                "tls_resumed_handshakes": self.tls_resumed_handshakes,
                "tls_handshake_failures": self.tls_handshake_failures,
                "tls_server_names": list(self.tls_server_names),
                "idle_closes": self.idle_closes,
                "idle_close_races": self.idle_close_races,
            }

    def reset(self, data_open=0):
        with self.lock:
            self.connections_accepted = 0
            self.connections_peak = data_open
            self.requests = 0
            self.requests_in_flight = 0
            self.requests_by_path = {}
            self.log = []
            self.tls_full_handshakes = 0
            self.tls_resumed_handshakes = 0
            self.tls_handshake_failures = 0
            self.tls_server_names = []
            self.idle_closes = 0
            self.idle_close_races = 0


class ClientGone(Exception):
    pass


class BadRequest(Exception):
    pass


class Conn:
    """One accepted connection, served by its own thread."""

    def __init__(self, server, sock, conn_id):
        self.server = server
        self.sock = sock
        self.id = conn_id
        self.buf = bytearray()
        self.counted = True      # counted as a data-plane connection
        self.data = False        # first request was a data-plane request (and still open)
        self.classified = False  # first request seen
        self.nrequests = 0
        self.tls_resumed = None  # TLS: whether the handshake resumed a session
        self.tls_sni = None      # TLS: the server name the client sent, if any

    # ---- reading -------------------------------------------------------------
    def _fill(self, timeout=None):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(256 * 1024)
        except socket.timeout:
            raise
        except OSError:
            raise ClientGone()
        if not data:
            raise ClientGone()
        self.buf += data

    def read_head(self, first_byte_timeout):
        """Returns the raw head (without the final CRLFCRLF), or None on idle close."""
        while True:
            idx = self.buf.find(b"\r\n\r\n")
            if idx >= 0:
                head = bytes(self.buf[:idx])
                del self.buf[:idx + 4]
                return head
            if len(self.buf) > MAX_HEAD:
                raise BadRequest("head too large")
            timeout = first_byte_timeout if not self.buf else None
            try:
                self._fill(timeout)
            except socket.timeout:
                return None

    def read_exact(self, n, sink=None):
        """Reads n body bytes; appends them to sink (a bytearray) unless None."""
        remaining = n
        while remaining > 0:
            if not self.buf:
                self._fill()
            take = min(remaining, len(self.buf))
            if sink is not None:
                sink += self.buf[:take]
            del self.buf[:take]
            remaining -= take

    def read_line(self):
        while True:
            idx = self.buf.find(b"\r\n")
            if idx >= 0:
                line = bytes(self.buf[:idx])
                del self.buf[:idx + 2]
                return line
            if len(self.buf) > 64 * 1024:
                raise BadRequest("line too long")
            self._fill()

    def read_body(self, headers, sink):
        """Consumes the request body; returns its length. Fills sink if given."""
        te = header_values(headers, "transfer-encoding")
        cl = header_values(headers, "content-length")
        if te:
            if te[-1].split(",")[-1].strip().lower() != "chunked":
                raise BadRequest("unsupported transfer-encoding")
            total = 0
            while True:
                line = self.read_line()
                size_text = line.split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise BadRequest("bad chunk size")
                if size == 0:
                    while self.read_line():  # trailers
                        pass
                    return total
                self.read_exact(size, sink)
                total += size
                if self.read_line() != b"":
                    raise BadRequest("bad chunk end")
        if cl:
            if len(set(v.strip() for v in cl)) != 1:
                raise BadRequest("conflicting content-length")
            try:
                n = int(cl[0].strip())
            except ValueError:
                raise BadRequest("bad content-length")
            self.read_exact(n, sink)
            return n
        return 0

    # ---- writing -------------------------------------------------------------
    def send(self, data):
        try:
            self.sock.sendall(data)
        except OSError:
            raise ClientGone()

    def send_pattern(self, n, offset=0):
        while n > 0:
            start = offset % len(BLOCK)
            take = min(n, len(BLOCK) - start)
            self.send(BLOCK_VIEW[start:start + take])
            offset += take
            n -= take

    # ---- serving -------------------------------------------------------------
    def serve(self):
        opts = self.server.opts
        idle = opts.idle_close_ms / 1000.0 if opts.idle_close_ms else None
        try:
            if self.server.tls and not self.tls_handshake():
                return
            while True:
                head = self.read_head(idle if self.classified else None)
                if head is None:
                    if self.server.tls and opts.tls_close_notify:
                        try:
                            self.sock.settimeout(1.0)
                            self.sock.unwrap()  # close_notify, then the peer's
                        except (OSError, ValueError):
                            pass
                    self.idle_close()
                    return
                try:
                    method, target, version, headers = parse_head(head)
                except BadRequest:
                    self.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    return
                path = urlsplit(target).path if not target.startswith("/") else target.split("?", 1)[0]
                control = path.startswith("/__")
                if not self.classified:
                    self.classified = True
                    if control:
                        self.server.uncount(self)
                    else:
                        self.server.data_connection(self)
                if control:
                    if not self.control(method, path, headers):
                        return
                    continue
                self.nrequests += 1
                st = self.server.stats
                with st.lock:
                    st.requests += 1
                    st.requests_in_flight += 1
                    st.requests_by_path[path] = st.requests_by_path.get(path, 0) + 1
                    st.log.append({
                        "method": method, "target": target, "version": version,
                        "headers": [[k, v] for k, v in headers],
                        "conn": self.id, "conn_request": self.nrequests,
                        "time": time.time(),
                    })
                try:
                    keep = self.handle(method, target, version, headers)
                finally:
                    with st.lock:
                        st.requests_in_flight -= 1
                if not keep:
                    return
        except (ClientGone, BadRequest):
            return
        finally:
            self.server.closed(self)

    def idle_close(self):
        """FIN, then wait (briefly) for the peer's close: bytes arriving first are a
        request that crossed our FIN, i.e. a keep-alive race; the close then resets it."""
        st = self.server.stats
        raced = bool(self.buf)
        if not self.server.tls:
            try:
                self.sock.shutdown(socket.SHUT_WR)
                self.sock.settimeout(1.0)
                raced = raced or bool(self.sock.recv(65536))
            except OSError:
                pass
        with st.lock:
            st.idle_closes += 1
            if raced and self.classified:
                st.idle_close_races += 1

    def tls_handshake(self):
        st = self.server.stats
        try:
            self.sock.settimeout(10)
            self.sock = self.server.tls.wrap_socket(self.sock, server_side=True)
        except (OSError, ValueError):
            with st.lock:
                st.tls_handshake_failures += 1
            return False
        self.tls_resumed = self.sock.session_reused
        self.tls_sni = getattr(self.sock, "sni_seen", None)
        return True

    def keep_alive_wanted(self, version, headers):
        conn = ",".join(header_values(headers, "connection")).lower()
        tokens = [t.strip() for t in conn.split(",")]
        if version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens

    def respond(self, status, headers=(), body=b"", *, head_only=False, keep=True,
                content_length=None):
        """Sends a complete response head (+ body). Returns keep."""
        opts = self.server.opts
        lines = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Status"))]
        lines += ["%s: %s" % (k, v) for k, v in headers]
        if opts.max_requests_per_conn and self.nrequests >= opts.max_requests_per_conn:
            keep = False
        if opts.keepalive_timeout_header is not None and keep:
            lines.append("Keep-Alive: timeout=%d" % opts.keepalive_timeout_header)
        if not (100 <= status < 200 or status in (204, 304)):
            lines.append("Content-Length: %d" % (len(body) if content_length is None else content_length))
        if not keep:
            lines.append("Connection: close")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if not head_only:
            data += body
        self.send(data)
        return keep

    def handle(self, method, target, version, headers):
        parts = urlsplit(target)
        path = parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        keep = self.keep_alive_wanted(version, headers)
        head_only = method == "HEAD"
        segs = path.strip("/").split("/")
        name = segs[0]
        arg = segs[1] if len(segs) > 1 else ""

        def num(text, default=0):
            try:
                return int(text)
            except ValueError:
                return default

        if name == "echo" and method in ("POST", "PUT"):
            expect = ",".join(header_values(headers, "expect")).lower()
            if "100-continue" in expect and query.get("no_continue") != "1":
                self.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            discard = query.get("discard") == "1"
            sink = None if discard else bytearray()
            n = self.read_body(headers, sink)
            body = b"%d" % n if discard else bytes(sink)
            ctype = header_values(headers, "content-type")
            hdrs = [("X-Received-Bytes", str(n)),
                    ("Content-Type", ctype[0] if ctype and not discard else "text/plain")]
            return self.respond(200, hdrs, body, head_only=head_only, keep=keep)

        if name == "answer-early" and method in ("POST", "PUT"):
            code = num(arg, 413)
            self.read_exact(num(query.get("read", "")))  # raw bytes, whatever the framing
            self.respond(code, [("Content-Type", "text/plain")], b"answered early\n", keep=False)
            if query.get("reset") == "1":
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False

        # Every other endpoint: consume (and ignore) any request body first.
        self.read_body(headers, None)

        if name == "bytes":
            n = num(arg)
            k = self.respond(200, [("Content-Type", "application/octet-stream")], b"",
                             head_only=True, keep=keep, content_length=n)
            if not head_only:
                self.send_pattern(n)
            return k
        if name == "chunked":
            n = num(arg)
            chunk = max(1, num(query.get("chunk", ""), 16 * 1024))
            lines = ["HTTP/1.1 200 OK", "Content-Type: application/octet-stream",
                     "Transfer-Encoding: chunked"]
            if self.server.opts.keepalive_timeout_header is not None:
                lines.append("Keep-Alive: timeout=%d" % self.server.opts.keepalive_timeout_header)
            if self.server.opts.max_requests_per_conn and self.nrequests >= self.server.opts.max_requests_per_conn:
                keep = False
            if not keep:
                lines.append("Connection: close")
            self.send(("\r\n".join(lines) + "\r\n\r\n").encode())
            if head_only:
                return keep
            off = 0
            while off < n:
                take = min(chunk, n - off)
                self.send(b"%x\r\n" % take)
                self.send_pattern(take, off)
                self.send(b"\r\n")
                off += take
            self.send(b"0\r\n\r\n")
            return keep
        if name == "close-delimited":
            n = num(arg)
            self.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n")
            if not head_only:
                self.send_pattern(n)
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            return False
        if name == "reset-after":
            n = num(arg)
            self.respond(200, [("Content-Type", "application/octet-stream")], b"",
                         head_only=True, keep=True, content_length=2 * n)
            self.send_pattern(n)
            time.sleep(0.05)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False  # close() now sends RST
        if name == "reset-before-head":
            if query.get("reused_only") == "1" and self.nrequests == 1:
                return self.respond(200, [("Content-Type", "text/plain")], b"fresh",
                                    head_only=head_only, keep=keep)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False  # close() now sends RST, not a single response byte
        if name == "trickle":
            n = num(arg)
            interval = num(query.get("interval_ms", ""), 100) / 1000.0
            k = self.respond(200, [("Content-Type", "application/octet-stream")], b"",
                             head_only=True, keep=keep, content_length=n)
            if not head_only:
                for i in range(n):
                    self.send_pattern(1, i)
                    if i + 1 < n:
                        time.sleep(interval)
            return k
        if name == "paced":
            n = num(arg)
            chunk = max(1, num(query.get("chunk", ""), 32 * 1024))
            interval = num(query.get("interval_ms", ""), 100) / 1000.0
            k = self.respond(200, [("Content-Type", "application/octet-stream")], b"",
                             head_only=True, keep=keep, content_length=n)
            off = 0
            while not head_only and off < n:
                take = min(chunk, n - off)
                self.send_pattern(take, off)
                off += take
                if off < n:
                    time.sleep(interval)
            return k
        if name == "delay":
            ms = num(arg)
            time.sleep(ms / 1000.0)
            return self.respond(200, [("Content-Type", "text/plain")], b"delayed %d" % ms,
                                head_only=head_only, keep=keep)
        if name == "hang":
            self.sock.settimeout(None)
            while True:  # until the peer goes away (or the process is killed)
                try:
                    data = self.sock.recv(65536)
                except OSError:
                    return False
                if not data:
                    return False
        if name == "status":
            code = num(arg, 200)
            body = b"" if (100 <= code < 200 or code in (204, 304)) else b"status %d\n" % code
            return self.respond(code, [("Content-Type", "text/plain")], body,
                                head_only=head_only, keep=keep)
        if name == "headers":
            body = json.dumps({"method": method, "target": target, "version": version,
                               "headers": [[k, v] for k, v in headers]}).encode()
            return self.respond(200, [("Content-Type", "application/json")], body,
                                head_only=head_only, keep=keep)
        if name == "keepalive-hint":
            n = num(arg)
            return self.respond(200, [("Keep-Alive", "timeout=%d" % n), ("Connection", "keep-alive"),
                                      ("Content-Type", "text/plain")],
                                b"hint %d\n" % n, head_only=head_only, keep=keep)
        if name == "large-headers":
            n = num(arg)
            hdrs = []
            i = 0
            while n > 0:
                take = min(n, 4000)
                hdrs.append(("X-Large-%d" % i, "x" * take))
                n -= take
                i += 1
            return self.respond(200, hdrs, b"large\n", head_only=head_only, keep=keep)
        if name == "raw":
            # Response bytes chosen by the test, unchecked: for hostile-origin tests.
            self.send(b64decode(query.get("b", "")))
            if "then" in query:
                time.sleep(num(query.get("then_ms", ""), 100) / 1000.0)
                self.send(b64decode(query["then"]))
            if query.get("close") == "1":
                try:
                    self.sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return False
            return True
        if name == "ws":
            upgrade = ",".join(header_values(headers, "upgrade")).lower()
            if not upgrade:
                return self.respond(426, [("Upgrade", "websocket")], b"upgrade required\n",
                                    head_only=head_only, keep=keep)
            self.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\n\r\n")
            if self.buf:
                self.send(bytes(self.buf))
                self.buf.clear()
            self.sock.settimeout(None)
            while True:
                try:
                    data = self.sock.recv(65536)
                except OSError:
                    return False
                if not data:
                    try:
                        self.sock.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    return False
                self.send(data)
        return self.respond(404, [("Content-Type", "text/plain")], b"no such endpoint\n",
                            head_only=head_only, keep=keep)

    def control(self, method, path, headers):
        self.read_body(headers, None)
        srv = self.server
        if path == "/__stats" and method == "GET":
            body = json.dumps(srv.stats.snapshot()).encode()
        elif path == "/__log" and method == "GET":
            with srv.stats.lock:
                body = json.dumps(srv.stats.log).encode()
        elif path == "/__reset" and method == "POST":
            srv.stats.reset(srv.data_open)
            body = b"{}"
        else:
            self.send(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            return True
        self.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                  % len(body) + body)
        return True


def b64decode(text):
    """URL-safe base64, padding optional."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def header_values(headers, name):
    return [v for k, v in headers if k.lower() == name]


def parse_head(head):
    try:
        text = head.decode("latin-1")
    except Exception:
        raise BadRequest("undecodable")
    lines = text.split("\r\n")
    # Tolerate leading empty lines (RFC 9112 2.2).
    while lines and lines[0] == "":
        lines.pop(0)
    if not lines:
        raise BadRequest("empty")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest("bad request line")
    method, target, version = parts
    headers = []
    for line in lines[1:]:
        if ":" not in line:
            raise BadRequest("bad header line")
        k, v = line.split(":", 1)
        if not k or k != k.strip():
            raise BadRequest("bad header name")
        headers.append((k, v.strip(" \t")))
    return method, target, version, headers


def record_sni(sslsock, server_name, _context):
    """SSLContext.sni_callback: runs for every ClientHello, with None when no SNI."""
    sslsock.sni_seen = server_name


class Server:
    def __init__(self, opts):
        self.opts = opts
        self.stats = Stats()
        self.next_id = 0
        self.data_open = 0  # open connections whose first request was a data request
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((opts.host, opts.port))
        self.listener.listen(1024)
        self.port = self.listener.getsockname()[1]
        self.tls = None
        if opts.tls_cert:
            import ssl
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(opts.tls_cert, opts.tls_key)
            if opts.tls_client_ca:
                self.tls.load_verify_locations(opts.tls_client_ca)
                self.tls.verify_mode = ssl.CERT_REQUIRED
            self.tls.sni_callback = record_sni

    def uncount(self, conn):
        with self.stats.lock:
            if conn.counted:
                conn.counted = False
                self.stats.connections_accepted = max(0, self.stats.connections_accepted - 1)
                self.stats.connections_open -= 1

    def data_connection(self, conn):
        with self.stats.lock:
            conn.data = True
            self.data_open += 1
            if conn.tls_resumed is not None:
                if conn.tls_resumed:
                    self.stats.tls_resumed_handshakes += 1
                else:
                    self.stats.tls_full_handshakes += 1
                self.stats.tls_server_names.append(conn.tls_sni)
                del self.stats.tls_server_names[:-1000]
            self.stats.connections_peak = max(self.stats.connections_peak, self.data_open)

    def closed(self, conn):
        with self.stats.lock:
            if conn.data:
                conn.data = False
                self.data_open -= 1
            if conn.counted:
                conn.counted = False
                self.stats.connections_open -= 1
        try:
            conn.sock.close()
        except OSError:
            pass

    def run(self):
        while True:
            sock, _ = self.listener.accept()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.stats.lock:
                self.next_id += 1
                conn = Conn(self, sock, self.next_id)
                self.stats.connections_accepted += 1
                self.stats.connections_open += 1
            threading.Thread(target=conn.serve, daemon=True).start()


def main():
    ap = argparse.ArgumentParser(description="misbehaving HTTP/1.1 test origin")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--idle-close-ms", type=int, default=0)
    ap.add_argument("--max-requests-per-conn", type=int, default=0)
    ap.add_argument("--keepalive-timeout-header", type=int, default=None)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--tls-client-ca")
    ap.add_argument("--tls-close-notify", action="store_true")
    opts = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    server = Server(opts)
    sys.stdout.write("PORT %d\n" % server.port)
    sys.stdout.flush()
    try:
        server.run()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
