// Specification of a proxy's header rules: hop-by-hop removal (RFC 9110 7.6.1), Host and Via,
// framing re-stated on each side, and the Connection header pooled itself sends to clients.
#include "http/headers.h"

#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

using namespace pooled;

namespace {

MessageHead request(std::string method, std::vector<Header> headers) {
    MessageHead h;
    h.method = std::move(method);
    h.target = "/";
    h.headers = std::move(headers);
    return h;
}

MessageHead response(int status, std::vector<Header> headers) {
    MessageHead h;
    h.status = status;
    h.reason = status == 200 ? "OK" : "Status";
    h.headers = std::move(headers);
    return h;
}

struct Head {
    std::string start_line;
    std::vector<Header> headers;
    bool terminated = false; // ends with an empty line

    // Values of every header with this name (case-insensitive), in order.
    std::vector<std::string> all(std::string_view name) const {
        std::vector<std::string> out;
        for (const auto& h : headers)
            if (equalsIgnoreCase(h.name, name))
                out.push_back(h.value);
        return out;
    }
    bool has(std::string_view name) const { return !all(name).empty(); }
    std::vector<std::string> names() const {
        std::vector<std::string> out;
        for (const auto& h : headers)
            out.push_back(h.name);
        return out;
    }
};

// Splits a serialized head on CRLF; every line must be "Name: value".
Head split(const std::string& text) {
    Head head;
    size_t pos = 0;
    bool first = true;
    while (pos < text.size()) {
        size_t end = text.find("\r\n", pos);
        REQUIRE(end != std::string::npos);
        std::string line = text.substr(pos, end - pos);
        pos = end + 2;
        if (first) {
            head.start_line = line;
            first = false;
            continue;
        }
        if (line.empty()) {
            head.terminated = true;
            REQUIRE(pos == text.size());
            break;
        }
        size_t colon = line.find(": ");
        REQUIRE(colon != std::string::npos);
        head.headers.push_back({line.substr(0, colon), line.substr(colon + 2)});
    }
    return head;
}

Head upstreamHead(const MessageHead& req, bool upgrade = false) {
    std::string out;
    appendUpstreamRequestHead(out, req, {"/path?q", "origin.test:8080", "pooled", upgrade});
    return split(out);
}

Head clientHead(const MessageHead& resp, ClientResponseHead options) {
    options.via_name = "pooled";
    std::string out;
    appendClientResponseHead(out, resp, options);
    return split(out);
}

using Names = std::vector<std::string>;

} // namespace

TEST_CASE("the upstream request line is origin-form HTTP/1.1 and Host is the authority",
          "[http]") {
    auto req = request("GET", {{"Host", "client-said.test"}, {"Accept", "*/*"}});
    req.version_minor = 0;
    auto head = upstreamHead(req);
    CHECK(head.terminated);
    CHECK(head.start_line == "GET /path?q HTTP/1.1");
    CHECK(head.headers.front().name == "Host");
    CHECK(head.all("host") == std::vector<std::string>{"origin.test:8080"});
}

TEST_CASE("every always-hop-by-hop request header is dropped", "[http]") {
    auto req = request("GET", {{"Connection", "keep-alive"},
                               {"Keep-Alive", "timeout=5"},
                               {"Proxy-Connection", "keep-alive"},
                               {"Proxy-Authorization", "Basic Zm9vOmJhcg=="},
                               {"TE", "trailers"},
                               {"Trailer", "X-Checksum"},
                               {"Upgrade", "websocket"},
                               {"X-Kept", "1"}});
    auto head = upstreamHead(req);
    CHECK(head.names() == Names{"Host", "X-Kept", "Via"});
}

TEST_CASE("Transfer-Encoding is not copied but re-stated as chunked", "[http]") {
    auto req = request("POST", {{"Transfer-Encoding", "chunked"}, {"X-A", "1"}});
    req.chunked = true;
    auto head = upstreamHead(req);
    CHECK(head.all("transfer-encoding") == std::vector<std::string>{"chunked"});
    CHECK_FALSE(head.has("content-length"));
}

TEST_CASE("headers named by Connection are dropped, case-insensitively, in comma lists",
          "[http]") {
    auto req = request("GET", {{"connection", "X-Foo ,  x-bar,,KEEP-ALIVE"},
                               {"X-FOO", "1"},
                               {"x-Bar", "2"},
                               {"X-Baz", "3"},
                               {"Connection", "\tX-Qux\t"},
                               {"x-qux", "4"}});
    auto head = upstreamHead(req);
    CHECK(head.names() == Names{"Host", "X-Baz", "Via"});
}

TEST_CASE("the order and case of end-to-end headers are kept, duplicates too", "[http]") {
    auto req = request("GET", {{"x-lower", "a"},
                               {"X-UPPER", "b"},
                               {"Cookie", "c=1"},
                               {"Accept", "text/html"},
                               {"Cookie", "d=2"}});
    auto head = upstreamHead(req);
    CHECK(head.names() == Names{"Host", "x-lower", "X-UPPER", "Cookie", "Accept", "Cookie",
                                "Via"});
    CHECK(head.all("cookie") == std::vector<std::string>{"c=1", "d=2"});
}

TEST_CASE("Via names the client's protocol version and the proxy", "[http]") {
    auto req = request("GET", {{"Via", "1.1 earlier-proxy"}});
    auto head = upstreamHead(req);
    CHECK(head.all("via") == std::vector<std::string>{"1.1 earlier-proxy", "1.1 pooled"});

    auto old = request("GET", {});
    old.version_minor = 0;
    CHECK(upstreamHead(old).all("via") == std::vector<std::string>{"1.0 pooled"});
}

TEST_CASE("Content-Length is re-stated from the parsed length, not copied", "[http]") {
    auto req = request("POST", {{"content-length", "0005"}, {"X-A", "1"}});
    req.content_length = 5;
    auto head = upstreamHead(req);
    CHECK(head.all("content-length") == std::vector<std::string>{"5"});

    auto empty = request("POST", {{"Content-Length", "0"}});
    empty.content_length = 0;
    CHECK(upstreamHead(empty).all("content-length") == std::vector<std::string>{"0"});

    auto none = request("GET", {});
    CHECK_FALSE(upstreamHead(none).has("content-length"));
}

TEST_CASE("Expect is dropped: pooled answers 100-continue itself", "[http]") {
    auto req = request("POST", {{"Expect", "100-continue"}, {"Content-Length", "3"}});
    req.content_length = 3;
    CHECK_FALSE(upstreamHead(req).has("expect"));
}

TEST_CASE("an upgrade request forwards Upgrade with Connection: upgrade", "[http]") {
    auto req = request("GET", {{"Connection", "Upgrade"}, {"Upgrade", "websocket"},
                               {"Sec-WebSocket-Key", "k"}});
    auto head = upstreamHead(req, true);
    CHECK(head.all("upgrade") == std::vector<std::string>{"websocket"});
    CHECK(head.all("connection") == std::vector<std::string>{"upgrade"});
    CHECK(head.has("sec-websocket-key"));
}

TEST_CASE("parseConnectionOptions reads close, keep-alive and upgrade from both headers",
          "[http]") {
    auto h = request("GET", {{"Connection", "Close, X-A"}, {"Proxy-Connection", "Keep-Alive"}});
    auto options = parseConnectionOptions(h);
    CHECK(options.close);
    CHECK(options.keep_alive);
    CHECK_FALSE(options.upgrade);
    CHECK(options.tokens == std::vector<std::string_view>{"X-A"});
    CHECK(isHopByHop("X-A", options));
    CHECK(isHopByHop("TRANSFER-ENCODING", options));
    CHECK_FALSE(isHopByHop("X-B", options));
}

TEST_CASE("clientFraming: answers to HEAD, 1xx, 204 and 304 have no body", "[http]") {
    auto ok = response(200, {});
    ok.content_length = 10;
    CHECK(clientFraming(ok, true, false) == BodyFraming::None);
    for (int status : {100, 101, 103, 204, 304}) {
        auto r = response(status, {});
        r.content_length = 10;
        INFO(status);
        CHECK(clientFraming(r, false, false) == BodyFraming::None);
        CHECK(clientFraming(r, false, true) == BodyFraming::None);
    }
}

TEST_CASE("clientFraming: Content-Length stays Content-Length for every client", "[http]") {
    auto r = response(200, {});
    r.content_length = 0;
    CHECK(clientFraming(r, false, false) == BodyFraming::ContentLength);
    r.content_length = 42;
    CHECK(clientFraming(r, false, true) == BodyFraming::ContentLength);
}

TEST_CASE("clientFraming: chunked goes to 1.1 clients as chunked, to 1.0 as close-delimited",
          "[http]") {
    auto r = response(200, {});
    r.chunked = true;
    CHECK(clientFraming(r, false, false) == BodyFraming::Chunked);
    CHECK(clientFraming(r, false, true) == BodyFraming::CloseDelimited);
}

TEST_CASE("clientFraming: a close-delimited upstream body is re-framed as chunked for 1.1",
          "[http]") {
    auto r = response(200, {});
    CHECK(clientFraming(r, false, false) == BodyFraming::Chunked);
    CHECK(clientFraming(r, false, true) == BodyFraming::CloseDelimited);
}

TEST_CASE("the client response head drops hop-by-hop headers and adds Via", "[http]") {
    auto r = response(200, {{"Connection", "keep-alive, X-Hop"},
                            {"Keep-Alive", "timeout=5"},
                            {"X-Hop", "1"},
                            {"Proxy-Authenticate", "Basic"},
                            {"Content-Type", "text/plain"},
                            {"Content-Length", "2"},
                            {"Set-Cookie", "a=1"}});
    r.content_length = 2;
    auto head = clientHead(r, {BodyFraming::ContentLength, true, false, false, {}});
    CHECK(head.start_line == "HTTP/1.1 200 OK");
    CHECK(head.names() == Names{"Content-Type", "Content-Length", "Set-Cookie", "Via"});
    CHECK(head.all("via") == std::vector<std::string>{"1.1 pooled"});
}

TEST_CASE("a chunked client response replaces Content-Length and Transfer-Encoding", "[http]") {
    auto r = response(200, {{"Transfer-Encoding", "chunked"}, {"X-A", "1"}});
    r.chunked = true;
    auto head = clientHead(r, {BodyFraming::Chunked, true, false, false, {}});
    CHECK(head.all("transfer-encoding") == std::vector<std::string>{"chunked"});
    CHECK_FALSE(head.has("content-length"));
    CHECK_FALSE(head.has("connection"));
}

TEST_CASE("a HEAD or 304 answer keeps the Content-Length describing the resource", "[http]") {
    auto r = response(304, {{"Content-Length", "1234"}, {"ETag", "\"x\""}});
    r.content_length = 1234;
    auto head = clientHead(r, {BodyFraming::None, true, false, false, {}});
    CHECK(head.all("content-length") == std::vector<std::string>{"1234"});
}

TEST_CASE("the client response says Connection: close when the connection will close",
          "[http]") {
    auto r = response(200, {{"Content-Length", "2"}});
    r.content_length = 2;
    auto closing = clientHead(r, {BodyFraming::ContentLength, false, false, false, {}});
    CHECK(closing.all("connection") == std::vector<std::string>{"close"});

    auto delimited = clientHead(response(200, {}),
                                {BodyFraming::CloseDelimited, true, true, false, {}});
    CHECK(delimited.all("connection") == std::vector<std::string>{"close"});
    CHECK_FALSE(delimited.has("transfer-encoding"));
}

TEST_CASE("a keep-alive HTTP/1.0 client is told Connection: keep-alive, 1.1 clients nothing",
          "[http]") {
    auto r = response(200, {{"Content-Length", "2"}});
    r.content_length = 2;
    auto old = clientHead(r, {BodyFraming::ContentLength, true, true, false, {}});
    CHECK(old.all("connection") == std::vector<std::string>{"keep-alive"});
    auto current = clientHead(r, {BodyFraming::ContentLength, true, false, false, {}});
    CHECK_FALSE(current.has("connection"));
}

TEST_CASE("a 101 answer forwards Upgrade with Connection: upgrade", "[http]") {
    auto r = response(101, {{"Upgrade", "websocket"}, {"Connection", "Upgrade"},
                            {"Sec-WebSocket-Accept", "a"}});
    r.reason = "Switching Protocols";
    auto head = clientHead(r, {BodyFraming::None, true, false, true, {}});
    CHECK(head.all("upgrade") == std::vector<std::string>{"websocket"});
    CHECK(head.all("connection") == std::vector<std::string>{"upgrade"});
    CHECK(head.has("sec-websocket-accept"));
}
