// Specification of the errors pooled answers itself: the RFC 9209 Proxy-Status value and the
// small text/plain response around it, which any HTTP/1.1 client must be able to parse.
#include "http/parser.h"
#include "http/proxy_status.h"

#include <catch2/catch.hpp>

#include <string>

using namespace pooled;

namespace {

// Parses one response with the daemon's own parser and keeps its head and body.
struct ParsedResponse : HttpParser::Handler {
    HttpParser parser{HttpParser::Kind::Response, *this, HttpParser::Limits{}};
    MessageHead head;
    std::string body;
    int completed = 0;

    int onHead() override {
        head = parser.head();
        return 0;
    }
    int onBody(const char* data, size_t length) override {
        body.append(data, length);
        return 0;
    }
    int onMessageComplete() override {
        ++completed;
        return HPE_PAUSED;
    }
};

} // namespace

TEST_CASE("Proxy-Status names the proxy and the error token", "[http]") {
    ProxyError error{502, "connection_refused", ""};
    CHECK(proxyStatusValue("pooled", error) == "pooled; error=connection_refused");
}

TEST_CASE("Proxy-Status details are an sf-string with quotes and backslashes escaped",
          "[http]") {
    ProxyError error{502, "dns_error", R"(host "a\b" not found)"};
    CHECK(proxyStatusValue("pooled", error) ==
          R"(pooled; error=dns_error; details="host \"a\\b\" not found")");
}

TEST_CASE("Proxy-Status details replace bytes that are not printable ASCII", "[http]") {
    ProxyError error{502, "http_protocol_error", std::string("a\r\nb\x01\x7f\xc3\xa9\0z", 10)};
    CHECK(proxyStatusValue("pooled", error) ==
          "pooled; error=http_protocol_error; details=\"a??b?????z\"");
}

TEST_CASE("an error response is a complete HTTP/1.1 response with an exact Content-Length",
          "[http]") {
    ProxyError error{503, "connection_limit_reached", "too many \"waiting\""};
    std::string text = renderErrorResponse("pooled", error, false);

    ParsedResponse r;
    auto result = r.parser.execute(text.data(), text.size());
    REQUIRE(result.status == HttpParser::Status::Paused);
    CHECK(result.consumed == text.size()); // nothing after the body
    REQUIRE(r.completed == 1);
    CHECK(r.head.status == 503);
    CHECK(r.head.reason == "Service Unavailable");
    CHECK(r.head.version_major == 1);
    CHECK(r.head.version_minor == 1);
    REQUIRE(r.head.find("content-length") != nullptr);
    CHECK(r.head.content_length == static_cast<int64_t>(r.body.size()));
    CHECK(r.head.find("content-type")->value == "text/plain; charset=utf-8");
    CHECK(r.head.find("proxy-status")->value == proxyStatusValue("pooled", error));
    CHECK(r.head.find("connection") == nullptr);
    CHECK(r.head.keep_alive);
    CHECK(r.body == "503 Service Unavailable: connection_limit_reached: too many \"waiting\"\n");
}

TEST_CASE("an error response with close=true says Connection: close", "[http]") {
    std::string text = renderErrorResponse("pooled", {400, "http_request_error", ""}, true);
    ParsedResponse r;
    auto result = r.parser.execute(text.data(), text.size());
    REQUIRE(result.status == HttpParser::Status::Paused);
    CHECK(result.consumed == text.size());
    CHECK(r.head.status == 400);
    REQUIRE(r.head.find("connection") != nullptr);
    CHECK(r.head.find("connection")->value == "close");
    CHECK_FALSE(r.head.keep_alive);
    CHECK(r.body == "400 Bad Request: http_request_error\n");
}

TEST_CASE("an error response stays parseable whatever bytes the detail holds", "[http]") {
    ProxyError error{502, "http_protocol_error", std::string("x\r\n\r\nHTTP/1.1 200 OK\0", 21)};
    std::string text = renderErrorResponse("pooled", error, false);
    ParsedResponse r;
    auto result = r.parser.execute(text.data(), text.size());
    REQUIRE(result.status == HttpParser::Status::Paused);
    CHECK(result.consumed == text.size());
    CHECK(r.completed == 1);
    CHECK(r.head.status == 502);
    // The status line is never forged from the detail: only one response, and a sane header.
    auto value = r.head.find("proxy-status")->value;
    CHECK(value.find('\r') == std::string::npos);
    CHECK(value.find('\n') == std::string::npos);
}

TEST_CASE("reason phrases follow RFC 9110, and unknown codes get a generic one", "[http]") {
    CHECK(std::string(reasonPhrase(502)) == "Bad Gateway");
    CHECK(std::string(reasonPhrase(504)) == "Gateway Timeout");
    CHECK(std::string(reasonPhrase(431)) == "Request Header Fields Too Large");
    CHECK(std::string(reasonPhrase(413)) == "Content Too Large");
    CHECK(std::string(reasonPhrase(599)) == "Error");
}
