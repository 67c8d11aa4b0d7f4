#!/usr/bin/python3
"""Loop stall from a burst of new TLS connections: while N requests at once each open a
fresh https connection (full handshake: the origin forgets sessions and closes after each
answer), one client keeps sending plain requests over a warm keep-alive connection and
records each one's latency. Prints, per round, the plain requests' max and median.

    bench/tls_handshake_burst.py [--bin build/pooled] [--burst 20] [--rounds 5]

The TLS origin runs in its own process (ECDSA P-256 certificate, ECDHE-ECDSA-AES128-GCM),
so that it does not share this script's GIL with the measuring client."""

import argparse
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "support"))

import kit  # noqa: E402
from tls_certs import make_test_pki  # noqa: E402


def tls_origin(cert, key):
    """Serves each connection in a thread, a new context (no session resumption) each."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    print("PORT %d" % sock.getsockname()[1], flush=True)

    def handle(conn):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert, key)
        try:
            with ctx.wrap_socket(conn, server_side=True) as tls:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = tls.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        except (OSError, ssl.SSLError):
            pass

    while True:
        conn, _ = sock.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def get(port, path, timeout=30):
    with kit.RawClient(port, timeout=timeout) as c:
        c.send(kit.request_bytes("GET", path, "app.local"))
        return c.read_response(timeout=timeout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "build", "pooled"))
    ap.add_argument("--burst", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tls-origin", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.tls_origin:
        tls_origin(*args.tls_origin)
        return
    os.environ["POOLED_BIN"] = os.path.abspath(args.bin)
    tmp = tempfile.mkdtemp(prefix="tls-burst-")
    pki = make_test_pki(tmp)
    origin_proc = subprocess.Popen([sys.executable, __file__, "--tls-origin", pki["server_cert"],
                                    pki["server_key"]], stdout=subprocess.PIPE, text=True)
    plain = kit.Origin()
    pooled = None
    try:
        tls_port = int(origin_proc.stdout.readline().split()[1])
        pooled = kit.Pooled({
            "listeners": [{"address": "127.0.0.1:0", "route": "plain"},
                          {"address": "127.0.0.1:0", "route": "tls"}],
            "routes": [{"name": "plain", "upstream": plain.url("")},
                       {"name": "tls", "upstream": "https://localhost:%d" % tls_port,
                        "tls": {"ca_file": pki["ca"]}}],
        }, tmpdir=tmp)
        ports = {route: port for _, port, route in pooled.listeners}
        warm = kit.RawClient(ports["plain"], timeout=10)
        request = kit.request_bytes("GET", "/status/200", "app.local")

        def plain_once():
            t0 = time.perf_counter()
            warm.send(request)
            r = warm.read_response(timeout=10)
            assert r.status == 200
            return (time.perf_counter() - t0) * 1000

        plain_once()
        get(ports["tls"], "/warm")  # the worker's CA and first-use costs out of the way
        print("round  tls_ok  burst_ms  plain_n  plain_max_ms  plain_median_ms")
        for round_no in range(args.rounds):
            statuses = []
            done = threading.Event()
            start = threading.Barrier(args.burst + 1)

            def one(i):
                start.wait()
                statuses.append(get(ports["tls"], "/burst%d" % i).status)
                if len(statuses) == args.burst:
                    done.set()

            threads = [threading.Thread(target=one, args=(i,), daemon=True)
                       for i in range(args.burst)]
            for t in threads:
                t.start()
            start.wait()
            t0 = time.perf_counter()
            lat = []
            deadline = time.monotonic() + 30
            while not done.is_set() and time.monotonic() < deadline and len(lat) < 100000:
                lat.append(plain_once())
            burst_ms = (time.perf_counter() - t0) * 1000
            for t in threads:
                t.join(30)
            print("%5d  %6d  %8.1f  %7d  %12.2f  %15.2f" % (
                round_no, statuses.count(200), burst_ms, len(lat), max(lat),
                statistics.median(lat)), flush=True)
            time.sleep(0.3)
        warm.close()
    finally:
        if pooled:
            pooled.stop(check=False)
        plain.stop()
        origin_proc.kill()  # our own child, by its handle
        origin_proc.wait()


if __name__ == "__main__":
    main()
