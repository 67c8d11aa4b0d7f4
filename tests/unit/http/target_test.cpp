// Specification of request-target parsing (RFC 9112 3.2) and of Host patterns: which targets a
// proxy accepts, what it sends upstream, and which it answers with 400.
#include "http/target.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace pooled;

namespace {

RequestTarget parse(const std::string& method, const std::string& target) {
    auto t = parseRequestTarget(method, target);
    INFO(method << " " << target);
    REQUIRE(t.has_value());
    return *t;
}

bool rejects(const std::string& method, const std::string& target) {
    return !parseRequestTarget(method, target).has_value();
}

} // namespace

TEST_CASE("an origin-form target is sent upstream unchanged", "[http]") {
    auto t = parse("GET", "/index.html?q=1&r=2");
    CHECK(t.form == RequestTarget::Form::Origin);
    CHECK(t.path == "/index.html?q=1&r=2");
    CHECK(t.scheme.empty());
}

TEST_CASE("an absolute-form target without a port uses the scheme's default port", "[http]") {
    auto t = parse("GET", "http://example.com/a/b?c=d");
    CHECK(t.form == RequestTarget::Form::Absolute);
    CHECK(t.scheme == "http");
    CHECK(t.authority.host == "example.com");
    CHECK(t.authority.port == 80);
    CHECK_FALSE(t.authority.ipv6);
    CHECK(t.path == "/a/b?c=d");

    auto s = parse("GET", "https://example.com/");
    CHECK(s.scheme == "https");
    CHECK(s.authority.port == 443);
}

TEST_CASE("an absolute-form target with an explicit port keeps it", "[http]") {
    auto t = parse("GET", "http://example.com:8080/x");
    CHECK(t.authority.host == "example.com");
    CHECK(t.authority.port == 8080);
    CHECK(t.path == "/x");
    CHECK(t.authority.toString() == "example.com:8080");
    CHECK(t.authority.toString(true, 80) == "example.com:8080");
}

TEST_CASE("an absolute-form target without a path is sent as \"/\"", "[http]") {
    CHECK(parse("GET", "http://example.com").path == "/");
    CHECK(parse("GET", "http://example.com:81").path == "/");
    CHECK(parse("GET", "http://example.com?q=1").path == "/?q=1");
}

TEST_CASE("an IPv6 literal authority is unbracketed, and brackets come back in toString",
          "[http]") {
    auto t = parse("GET", "http://[::1]:8080/p");
    CHECK(t.authority.host == "::1");
    CHECK(t.authority.ipv6);
    CHECK(t.authority.port == 8080);
    CHECK(t.authority.toString() == "[::1]:8080");

    auto d = parse("GET", "http://[::1]/");
    CHECK(d.authority.port == 80);
    CHECK(d.authority.toString(true, 80) == "[::1]");
}

TEST_CASE("a fragment is dropped and the query kept", "[http]") {
    CHECK(parse("GET", "http://example.com/p?q=1#frag").path == "/p?q=1");
    CHECK(parse("GET", "http://example.com/p#frag?notquery").path == "/p");
    CHECK(parse("GET", "http://example.com#frag").path == "/");
    CHECK(parse("GET", "/p?q=1#frag").path == "/p?q=1");
    CHECK(parse("GET", "/#frag").path == "/");
}

TEST_CASE("Host: exactly one valid authority, required in HTTP/1.1 except for CONNECT",
          "[http]") {
    auto head = [](std::string method, std::vector<Header> headers, uint8_t minor = 1) {
        MessageHead h;
        h.method = std::move(method);
        h.version_minor = minor;
        h.headers = std::move(headers);
        return h;
    };
    CHECK(hostHeaderProblem(head("GET", {{"Host", "a.example:8080"}})) == nullptr);
    CHECK(hostHeaderProblem(head("GET", {{"host", "[::1]"}})) == nullptr);
    CHECK(hostHeaderProblem(head("GET", {})) != nullptr);
    CHECK(hostHeaderProblem(head("GET", {}, 0)) == nullptr);
    CHECK(hostHeaderProblem(head("CONNECT", {})) == nullptr);
    CHECK(hostHeaderProblem(head("GET", {{"Host", "a"}, {"HOST", "a"}})) != nullptr);
    CHECK(hostHeaderProblem(head("GET", {{"Host", "a b"}})) != nullptr);
    CHECK(hostHeaderProblem(head("GET", {{"Host", "user@a"}})) != nullptr);
    CHECK(hostHeaderProblem(head("GET", {{"Host", ""}})) != nullptr);
}

TEST_CASE("dot segments and percent-encoded bytes pass through unchanged", "[http]") {
    // A proxy must not normalise paths: the origin decides what they mean.
    CHECK(parse("GET", "/a/../b/%2e%2e/%2F?x=%00").path == "/a/../b/%2e%2e/%2F?x=%00");
    CHECK(parse("GET", "http://example.com/a/../../etc/%70asswd").path ==
          "/a/../../etc/%70asswd");
}

TEST_CASE("the host is lower-cased, the path is not", "[http]") {
    auto t = parse("GET", "HTTP://ExAmPle.COM/Path");
    CHECK(t.scheme == "http");
    CHECK(t.authority.host == "example.com");
    CHECK(t.path == "/Path");
    CHECK(parse("CONNECT", "ExAmPle.COM:443").authority.host == "example.com");
}

TEST_CASE("userinfo in an authority is rejected", "[http]") {
    CHECK(rejects("GET", "http://user:pass@example.com/"));
    CHECK(rejects("GET", "http://user@example.com/"));
    CHECK(rejects("CONNECT", "user@example.com:443"));
}

TEST_CASE("ports outside 1..65535 or not numeric are rejected", "[http]") {
    CHECK(rejects("GET", "http://example.com:0/"));
    CHECK(rejects("GET", "http://example.com:65536/"));
    CHECK(rejects("GET", "http://example.com:abc/"));
    CHECK(rejects("GET", "http://example.com:/"));
    CHECK(rejects("GET", "http://example.com:-1/"));
    CHECK(rejects("GET", "http://example.com:+80/"));
    CHECK(rejects("GET", "http://example.com:8080x/"));
    CHECK(rejects("GET", "http://example.com:000080/"));
    CHECK(rejects("GET", "http://[::1]:0/"));
    CHECK(rejects("GET", "http://[::1]x/"));
    CHECK(parse("GET", "http://example.com:65535/").authority.port == 65535);
    CHECK(parse("GET", "http://example.com:1/").authority.port == 1);
}

TEST_CASE("malformed hosts are rejected", "[http]") {
    CHECK(rejects("GET", "http:///path"));
    CHECK(rejects("GET", "http://:80/"));
    CHECK(rejects("GET", "http://exa mple.com/"));
    CHECK(rejects("GET", "http://[]/"));
    CHECK(rejects("GET", "http://[::1/"));
    CHECK(rejects("GET", "http://[fe80::1%25eth0]/"));
    CHECK(rejects("GET", "http://" + std::string(254, 'a') + "/"));
}

TEST_CASE("CONNECT takes an authority-form target that must name a port", "[http]") {
    auto t = parse("CONNECT", "example.com:443");
    CHECK(t.form == RequestTarget::Form::Authority);
    CHECK(t.authority.host == "example.com");
    CHECK(t.authority.port == 443);
    CHECK(t.path.empty());

    auto v6 = parse("CONNECT", "[2001:db8::1]:8443");
    CHECK(v6.authority.ipv6);
    CHECK(v6.authority.host == "2001:db8::1");
    CHECK(v6.authority.port == 8443);

    CHECK(rejects("CONNECT", "example.com"));
    CHECK(rejects("CONNECT", "[::1]"));
    CHECK(rejects("CONNECT", "example.com:0"));
    CHECK(rejects("CONNECT", "/path"));
    CHECK(rejects("CONNECT", "http://example.com:443/"));
}

TEST_CASE("the asterisk form is accepted for OPTIONS only", "[http]") {
    auto t = parse("OPTIONS", "*");
    CHECK(t.form == RequestTarget::Form::Asterisk);
    CHECK(t.path == "*");
    CHECK(rejects("GET", "*"));
    CHECK(rejects("POST", "*"));
}

TEST_CASE("schemes other than http and https are rejected", "[http]") {
    CHECK(rejects("GET", "ftp://example.com/"));
    CHECK(rejects("GET", "ws://example.com/"));
    CHECK(rejects("GET", "file:///etc/passwd"));
    CHECK(rejects("GET", "httpx://example.com/"));
    CHECK(rejects("GET", "example.com/path"));
    CHECK(rejects("GET", ""));
}

TEST_CASE("hostMatches: an exact pattern matches only that host, in any case", "[http]") {
    CHECK(hostMatches("api.local", "api.local"));
    CHECK(hostMatches("api.local", "API.Local"));
    CHECK(hostMatches("API.LOCAL", "api.local"));
    CHECK_FALSE(hostMatches("api.local", "api.local.evil"));
    CHECK_FALSE(hostMatches("api.local", "x.api.local"));
    CHECK_FALSE(hostMatches("api.local", "api.loca"));
}

TEST_CASE("hostMatches: *.example.com matches sub-domains but not the bare domain", "[http]") {
    CHECK(hostMatches("*.example.com", "a.example.com"));
    CHECK(hostMatches("*.example.com", "a.b.example.com"));
    CHECK(hostMatches("*.example.com", "A.EXAMPLE.COM"));
    CHECK_FALSE(hostMatches("*.example.com", "example.com"));
    CHECK_FALSE(hostMatches("*.example.com", ".example.com"));
    CHECK_FALSE(hostMatches("*.example.com", "badexample.com"));
    CHECK_FALSE(hostMatches("*.example.com", "a.example.com.evil"));
}
