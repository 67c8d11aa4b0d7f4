// Specifications of the metrics: what each event counts, histogram buckets, bounded
// label cardinality, and the text exposition format.
#include "observe/metrics.h"

#include <catch2/catch.hpp>

#include <string>

namespace pooled {
namespace {

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

TEST_CASE("a finished request counts its status class, bytes and durations") {
    Metrics m;
    RequestRecord r;
    r.status = 204;
    r.bytes_in = 10;
    r.bytes_out = 20;
    r.pool_wait_us = 1500;
    r.connect_us = 300;
    r.reused = false;
    m.onRequest(r, 2'000'000);
    REQUIRE(m.requests_by_class[2] == 1);
    REQUIRE(m.bytes_in == 10);
    REQUIRE(m.bytes_out == 20);
    REQUIRE(m.request_duration.count() == 1);
    REQUIRE(m.request_duration.sum() == Approx(2.0));
    REQUIRE(m.pool_wait.count() == 1);
    REQUIRE(m.upstream_connect.count() == 1);
    REQUIRE(m.upstream_reused == 0);
}

TEST_CASE("a new https connection's first request counts its handshake, full or resumed") {
    Metrics m;
    RequestRecord full;
    full.status = 200;
    full.tls_us = 40'000;
    RequestRecord resumed = full;
    resumed.tls_us = 20'000;
    resumed.tls_resumed = true;
    RequestRecord reused = full; // an https connection's later request: no handshake
    reused.reused = true;
    reused.tls_us = 0;
    RequestRecord plain;         // http: no TLS at all
    plain.status = 200;
    for (const auto* r : {&full, &resumed, &reused, &plain})
        m.onRequest(*r, 100);
    CHECK(m.tls_full == 1);
    CHECK(m.tls_resumed == 1);
    CHECK(m.upstream_tls.count() == 2);
    CHECK(m.upstream_tls.sum() == Approx(0.06));
    const std::string text = m.render({});
    CHECK(text.find("pooled_upstream_tls_handshakes_total{kind=\"full\"} 1\n") != std::string::npos);
    CHECK(text.find("pooled_upstream_tls_handshakes_total{kind=\"resumed\"} 1\n") !=
          std::string::npos);
    CHECK(text.find("pooled_upstream_tls_handshake_seconds_count 2\n") != std::string::npos);
}

TEST_CASE("a request on a reused connection counts a reuse and no connect time") {
    Metrics m;
    RequestRecord r;
    r.status = 200;
    r.reused = true;
    r.pool_wait_us = 5;
    m.onRequest(r, 100);
    REQUIRE(m.upstream_reused == 1);
    REQUIRE(m.upstream_connect.count() == 0);
}

TEST_CASE("a failed request counts its Proxy-Status error and a request without status is 'none'") {
    Metrics m;
    RequestRecord r;
    r.status = 502;
    r.error = "connection_refused";
    m.onRequest(r, 1);
    RequestRecord cut;
    cut.error = "client_disconnected";
    m.onRequest(cut, 1);
    REQUIRE(m.requests_by_class[5] == 1);
    REQUIRE(m.requests_by_class[0] == 1);
    REQUIRE(m.request_errors.get("connection_refused") == 1);
    const std::string text = m.render({});
    REQUIRE(contains(text, "pooled_requests_total{code=\"5xx\"} 1\n"));
    REQUIRE(contains(text, "pooled_requests_total{code=\"none\"} 1\n"));
    REQUIRE(contains(text, "pooled_request_errors_total{error=\"connection_refused\"} 1\n"));
}

TEST_CASE("histogram buckets are cumulative and end with +Inf, _sum and _count") {
    Metrics m;
    RequestRecord r;
    r.status = 200;
    m.onRequest(r, 400);        // 0.0004 s: first bucket (0.0005)
    m.onRequest(r, 1'000);      // 0.001 s: exactly on a bound counts in it
    m.onRequest(r, 90'000'000); // 90 s: only +Inf
    const std::string text = m.render({});
    REQUIRE(contains(text, "# TYPE pooled_request_duration_seconds histogram\n"));
    REQUIRE(contains(text, "pooled_request_duration_seconds_bucket{le=\"0.0005\"} 1\n"));
    REQUIRE(contains(text, "pooled_request_duration_seconds_bucket{le=\"0.001\"} 2\n"));
    REQUIRE(contains(text, "pooled_request_duration_seconds_bucket{le=\"60\"} 2\n"));
    REQUIRE(contains(text, "pooled_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
    REQUIRE(contains(text, "pooled_request_duration_seconds_count 3\n"));
}

TEST_CASE("closed connections are counted by cause; causes past the limit become 'other'") {
    LabeledCounter causes(2);
    causes.add("idle_timeout");
    causes.add("origin_closed");
    causes.add("max_requests");
    causes.add("lifetime");
    causes.add("idle_timeout");
    REQUIRE(causes.get("idle_timeout") == 2);
    REQUIRE(causes.get("origin_closed") == 1);
    REQUIRE(causes.get("other") == 2);
    REQUIRE(causes.values().size() == 3);
}

TEST_CASE("per-host pool gauges keep the busiest hosts and sum the rest as 'other'") {
    Metrics m;
    LiveGauges live;
    live.pools.push_back({"http://a:80", 5, 1, 0, 0});
    live.pools.push_back({"http://b:80", 1, 0, 0, 0});
    live.pools.push_back({"http://c:80", 0, 2, 0, 0});
    live.pools.push_back({"http://d:80", 0, 0, 1, 3});
    const std::string text = m.render(live, 2);
    REQUIRE(contains(text, "pooled_pool_connections{pool=\"http://a:80\",state=\"active\"} 5\n"));
    REQUIRE(contains(text, "pooled_pool_pending_requests{pool=\"http://d:80\"} 3\n"));
    REQUIRE_FALSE(contains(text, "pool=\"http://b:80\""));
    REQUIRE_FALSE(contains(text, "pool=\"http://c:80\""));
    REQUIRE(contains(text, "pooled_pool_connections{pool=\"other\",state=\"active\"} 1\n"));
    REQUIRE(contains(text, "pooled_pool_connections{pool=\"other\",state=\"idle\"} 2\n"));
    // The totals cover every pool, named or not.
    REQUIRE(contains(text, "pooled_upstream_connections{state=\"active\"} 6\n"));
    REQUIRE(contains(text, "pooled_upstream_connections{state=\"idle\"} 3\n"));
}

TEST_CASE("every family has HELP and TYPE lines and label values are escaped") {
    Metrics m;
    m.onUpstreamClosed("we\"ird\\cause\n");
    const std::string text = m.render({});
    REQUIRE(contains(text, "cause=\"we\\\"ird\\\\cause\\n\""));
    size_t types = 0;
    size_t helps = 0;
    for (size_t at = 0; (at = text.find("# TYPE ", at)) != std::string::npos; ++at)
        ++types;
    for (size_t at = 0; (at = text.find("# HELP ", at)) != std::string::npos; ++at)
        ++helps;
    REQUIRE(types == helps);
    REQUIRE(types >= 15);
    REQUIRE(text.back() == '\n');
}

} // namespace
} // namespace pooled
