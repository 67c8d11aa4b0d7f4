// Specification of the reuse ladder: a connection a request is done with is kept only when
// every rung allows it, and the first rung that does not names the cause the
// closed-connections metric reports.
#include "pool/reuse_policy.h"

#include <catch2/catch.hpp>

#include <string>

using namespace pooled;

namespace {

// A connection every rung would keep.
ReuseFacts keepable() {
    ReuseFacts f;
    f.request_done = true;
    f.response_allows_reuse = true;
    f.idle_timeout_ms = 30000;
    f.requests = 3;
    f.max_requests = 100;
    f.now_us = 1000;
    f.expires_us = 2000;
    f.idle = 1;
    f.max_idle = 8;
    return f;
}

std::string cause(const ReuseFacts& f) {
    return std::string(reuseVerdict(f).cause);
}

} // namespace

TEST_CASE("a cleanly finished exchange on a healthy connection is kept, with no cause",
          "[pool][reuse]") {
    auto verdict = reuseVerdict(keepable());
    CHECK(verdict.keep);
    CHECK(verdict.cause.empty());
}

TEST_CASE("each rung of the ladder names its own cause", "[pool][reuse]") {
    auto f = keepable();
    SECTION("an answer before the request body went out whole") {
        f.request_done = false;
        CHECK(cause(f) == "early_response");
    }
    SECTION("a response whose framing or headers forbid reuse") {
        f.response_allows_reuse = false;
        CHECK(cause(f) == "not_reusable");
    }
    SECTION("shutting down") {
        f.draining = true;
        CHECK(cause(f) == "shutdown");
    }
    SECTION("no idle time left (an origin's Keep-Alive: timeout=0)") {
        f.idle_timeout_ms = 0;
        CHECK(cause(f) == "idle_timeout");
    }
    SECTION("max_requests_per_connection reached") {
        f.requests = 100;
        CHECK(cause(f) == "max_requests");
    }
    SECTION("max_connection_lifetime passed") {
        f.now_us = 2000;
        CHECK(cause(f) == "lifetime");
    }
    SECTION("max_idle_per_host reached with nobody queued") {
        f.idle = 8;
        CHECK(cause(f) == "max_idle");
    }
    SECTION("another origin waits for a max_connections_total slot") {
        f.others_starved = true;
        CHECK(cause(f) == "pool_full");
    }
    CHECK_FALSE(reuseVerdict(f).keep);
}

TEST_CASE("the first failing rung wins: an unreusable response during shutdown is not_reusable",
          "[pool][reuse]") {
    auto f = keepable();
    f.response_allows_reuse = false;
    f.draining = true;
    f.requests = 100;
    CHECK(cause(f) == "not_reusable");
}

TEST_CASE("limits that are off never close: max_requests 0 and no lifetime", "[pool][reuse]") {
    auto f = keepable();
    f.max_requests = 0;
    f.requests = 1000000;
    f.expires_us = 0;
    f.now_us = 1'000'000'000;
    CHECK(reuseVerdict(f).keep);
}

TEST_CASE("idle connections queued requests are about to take do not count against max_idle",
          "[pool][reuse]") {
    auto f = keepable();
    f.idle = 8;
    f.waiters = 9;
    CHECK(reuseVerdict(f).keep);
    f.others_starved = true; // waiters here: this pool's own requests come first
    CHECK(reuseVerdict(f).keep);
}
