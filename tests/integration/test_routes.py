"""Routes: sidecar listeners bound to a route, and Host-based routing of origin-form requests."""

from kit import RawClient, proxy_status_error, request_bytes


def route_config(o, extra_routes=()):
    return {
        "listeners": [{"address": "127.0.0.1:0"}, {"address": "127.0.0.1:0", "route": "api"}],
        "routes": [{"name": "api", "hosts": ["api.local"], "upstream": o.url("")}] + list(extra_routes),
    }


def get(port, target, host, method="GET"):
    with RawClient(port) as c:
        c.send(request_bytes(method, target, host))
        return c.read_response(method)


def test_listeners_report_their_route(origin, pooled):
    o = origin()
    p = pooled(route_config(o))
    assert len(p.ports) == 2 and p.ports[0] != p.ports[1]
    assert p.listeners[0][2] is None
    assert p.listeners[1][2] == "api"


def test_route_bound_listener_forwards_origin_form_to_the_route_upstream(origin, pooled):
    o = origin()
    p = pooled(route_config(o))
    r = get(p.ports[1], "/x?y=1", "whatever.example")
    assert r.status == 404  # the origin's own answer for /x
    assert r.body == b"no such endpoint\n"
    log = o.log()
    assert [e["target"] for e in log] == ["/x?y=1"]
    rec = p.wait_access_log(1)[0]
    assert rec["route"] == "api"


def test_route_bound_listener_serves_keepalive_requests_over_pooled_connections(origin, pooled):
    o = origin()
    p = pooled(route_config(o))
    for i in range(10):
        r = get(p.ports[1], "/bytes/%d" % i, "api.local")
        assert r.status == 200 and len(r.body) == i
    assert o.stats()["connections_accepted"] == 1


def test_origin_form_request_with_route_host_on_main_listener_uses_the_route(origin, pooled):
    o = origin()
    p = pooled(route_config(o))
    r = get(p.port, "/headers", "api.local")
    assert r.status == 200
    assert r.json()["target"] == "/headers"
    assert o.stats()["requests"] == 1


def test_route_host_match_is_case_insensitive(origin, pooled):
    o = origin()
    p = pooled(route_config(o))
    r = get(p.port, "/bytes/3", "API.Local")
    assert r.status == 200 and len(r.body) == 3


def test_wildcard_host_pattern_routes_subdomains(origin, pooled):
    o = origin()
    o2 = origin()
    cfg = route_config(o, [{"name": "svc", "hosts": ["*.svc.local"], "upstream": o2.url("")}])
    p = pooled(cfg)
    r = get(p.port, "/bytes/4", "a.svc.local")
    assert r.status == 200
    assert o2.stats()["requests"] == 1 and o.stats()["requests"] == 0


def test_origin_form_request_with_unknown_host_is_destination_not_found(origin, pooled):
    o = origin()
    p = pooled(route_config(o))
    r = get(p.port, "/headers", "unknown.example")
    assert 400 <= r.status < 600 and r.status in (400, 403, 404, 421, 502)
    assert proxy_status_error(r) == "destination_not_found", r.headers
    assert o.stats()["requests"] == 0
    rec = p.wait_access_log(1)[0]
    assert rec["error"] == "destination_not_found"


def test_absolute_form_on_main_listener_still_forward_proxies(origin, pooled):
    o = origin()
    other = origin()
    p = pooled(route_config(o))
    r = get(p.port, other.url("/bytes/2"), other.authority)
    assert r.status == 200
    assert other.stats()["requests"] == 1 and o.stats()["requests"] == 0
