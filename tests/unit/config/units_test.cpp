// Specification of the config value syntaxes: durations, sizes, upstream URLs, listen addresses.
#include "config/config_loader.h"

#include <catch2/catch.hpp>

#include <limits>
#include <stdexcept>

using namespace pooled;
using namespace std::chrono_literals;

TEST_CASE("durations are a whole number with ms, s, m or h", "[config]") {
    CHECK(parseDuration("250ms") == 250ms);
    CHECK(parseDuration("30s") == 30s);
    CHECK(parseDuration("5m") == 5min);
    CHECK(parseDuration("1h") == 1h);
    CHECK(parseDuration("1500ms") == 1500ms);
    CHECK(parseDuration("8760h") == 8760h);
}

TEST_CASE("a zero duration needs no unit", "[config]") {
    CHECK(parseDuration("0") == 0ms);
    CHECK(parseDuration("0s") == 0ms);
    CHECK(parseDuration("0ms") == 0ms);
}

TEST_CASE("a non-zero duration without a unit is rejected rather than guessed", "[config]") {
    CHECK_THROWS_AS(parseDuration("30"), std::invalid_argument);
    CHECK_THROWS_WITH(parseDuration("30"), Catch::Contains("needs a unit"));
}

TEST_CASE("malformed durations are rejected", "[config]") {
    for (const char* text : {"", "s", "1.5s", "-1s", "+1s", "30 s", " 30s", "30sec", "10d",
                             "1S", "30s ", "0x10s", "ms"}) {
        INFO(text);
        CHECK_THROWS_AS(parseDuration(text), std::invalid_argument);
    }
}

TEST_CASE("durations longer than a year or overflowing are rejected", "[config]") {
    CHECK_THROWS_WITH(parseDuration("8761h"), Catch::Contains("too long"));
    CHECK_THROWS_AS(parseDuration("99999999999999999999s"), std::invalid_argument);
    CHECK_THROWS_AS(parseDuration("18446744073709551615h"), std::invalid_argument);
}

TEST_CASE("sizes are bytes with an optional binary or decimal unit", "[config]") {
    CHECK(parseSize("0") == 0);
    CHECK(parseSize("512") == 512);
    CHECK(parseSize("512B") == 512);
    CHECK(parseSize("64KiB") == 64 * 1024);
    CHECK(parseSize("1MiB") == 1024 * 1024);
    CHECK(parseSize("1GiB") == 1024ULL * 1024 * 1024);
    CHECK(parseSize("10KB") == 10 * 1000);
    CHECK(parseSize("10kB") == 10 * 1000);
    CHECK(parseSize("10MB") == 10 * 1000 * 1000);
    CHECK(parseSize("1GB") == 1000ULL * 1000 * 1000);
}

TEST_CASE("malformed sizes are rejected", "[config]") {
    for (const char* text : {"", "KiB", "1.5MiB", "-1", "10 KiB", "10kib", "10K", "1TB", "1TiB",
                             "64 ", "0x40"}) {
        INFO(text);
        CHECK_THROWS_AS(parseSize(text), std::invalid_argument);
    }
}

TEST_CASE("sizes that do not fit in size_t are rejected", "[config]") {
    CHECK_THROWS_AS(parseSize("99999999999999999999"), std::invalid_argument);
    CHECK_THROWS_WITH(parseSize("18446744073709551615GiB"), Catch::Contains("too large"));
}

TEST_CASE("an upstream URL gives scheme, host and port", "[config]") {
    const UpstreamTarget t = parseUpstreamUrl("http://api.internal:8080");
    CHECK(t.scheme == "http");
    CHECK(t.host == "api.internal");
    CHECK(t.port == 8080);
}

TEST_CASE("an upstream URL without a port uses the scheme's default port", "[config]") {
    CHECK(parseUpstreamUrl("http://example.com").port == 80);
    CHECK(parseUpstreamUrl("https://example.com").port == 443);
    CHECK(parseUpstreamUrl("https://example.com").scheme == "https");
    CHECK(parseUpstreamUrl("https://example.com:8443").port == 8443);
}

TEST_CASE("an IPv6 upstream is written in brackets and stored without them", "[config]") {
    const UpstreamTarget t = parseUpstreamUrl("http://[::1]:8080");
    CHECK(t.host == "::1");
    CHECK(t.port == 8080);
    const UpstreamTarget u = parseUpstreamUrl("https://[2001:db8::1]");
    CHECK(u.host == "2001:db8::1");
    CHECK(u.port == 443);
}

TEST_CASE("scheme and host of an upstream URL are case-insensitive and stored lower-case",
          "[config]") {
    const UpstreamTarget t = parseUpstreamUrl("HTTPS://API.Example.COM");
    CHECK(t.scheme == "https");
    CHECK(t.host == "api.example.com");
    CHECK(t.port == 443);
}

TEST_CASE("an upstream URL may end in a single slash", "[config]") {
    CHECK(parseUpstreamUrl("http://10.0.0.1:81/").host == "10.0.0.1");
}

TEST_CASE("upstream URLs with another scheme are rejected", "[config]") {
    CHECK_THROWS_WITH(parseUpstreamUrl("ftp://files.local"),
                      Catch::Contains("unsupported scheme 'ftp'"));
    CHECK_THROWS_AS(parseUpstreamUrl("ws://x"), std::invalid_argument);
    CHECK_THROWS_AS(parseUpstreamUrl("api.internal:8080"), std::invalid_argument);
}

TEST_CASE("upstream URLs with a path, credentials or a bad authority are rejected", "[config]") {
    for (const char* url : {"http://", "http://:80", "http://host:0", "http://host:65536",
                            "http://host:abc", "http://host:", "http://host:-1", "http://::1:80",
                            "http://[::1", "http://[zz]:80", "http://[::1]x", "http://[::1]:",
                            "http://host/path", "http://host?x=1", "http://host#frag",
                            "http://user:pw@host", "http://ho st", "http://-host"}) {
        INFO(url);
        CHECK_THROWS_AS(parseUpstreamUrl(url), std::invalid_argument);
    }
}

TEST_CASE("a listen address is an IP literal and a port", "[config]") {
    const ListenerConfig v4 = parseListenAddress("127.0.0.1:3128");
    CHECK(v4.address == "127.0.0.1");
    CHECK(v4.port == 3128);
    CHECK(v4.route.empty());
    const ListenerConfig v6 = parseListenAddress("[::1]:8080");
    CHECK(v6.address == "::1");
    CHECK(v6.port == 8080);
    CHECK(parseListenAddress("0.0.0.0:65535").port == 65535);
}

TEST_CASE("listen port 0 asks for an ephemeral port", "[config]") {
    CHECK(parseListenAddress("127.0.0.1:0").port == 0);
    CHECK(parseListenAddress("[::]:0").port == 0);
}

TEST_CASE("bad listen addresses are rejected", "[config]") {
    for (const char* text : {"", "127.0.0.1", "localhost:3128", "::1:3128", "127.0.0.1:65536",
                             "127.0.0.1:", "127.0.0.1:-1", "[::1]3128", "[::1]", "[nope]:1",
                             "256.1.1.1:80", ":3128", "127.0.0.1:31 28"}) {
        INFO(text);
        CHECK_THROWS_AS(parseListenAddress(text), std::invalid_argument);
    }
}
