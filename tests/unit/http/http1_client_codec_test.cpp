// Specification of the upstream HTTP/1 codec, bytes in and events out, no socket: how a
// response is framed, when the connection may carry another request, and how the request
// pooled sends is encoded.
#include "http/http1_client_codec.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace pooled;

namespace {

// Records what the codec reports, as an upstream connection would see it.
struct Recorder : Http1ClientCodec::Events {
    std::vector<int> heads; // statuses, in order
    std::string body;
    int completes = 0;
    bool stop_at_head = false;
    bool onResponseHead(MessageHead& head) override {
        heads.push_back(head.status);
        return !stop_at_head;
    }
    bool onResponseBody(const char* data, size_t length) override {
        body.append(data, length);
        return true;
    }
    void onResponseComplete() override { ++completes; }
};

struct Fixture {
    Recorder events;
    Http1ClientCodec codec{events, HttpParser::Limits{}};
    explicit Fixture(bool head_request = false) { codec.beginResponse(head_request); }
    Http1ClientCodec::Result feed(const std::string& bytes) {
        return codec.decode(bytes.data(), bytes.size());
    }
};

using Status = Http1ClientCodec::Status;

} // namespace

TEST_CASE("a Content-Length response in pieces is reported head, body, complete, and the "
          "connection may be reused",
          "[codec]") {
    Fixture f;
    CHECK(f.feed("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhe").status == Status::More);
    CHECK(f.events.heads == std::vector<int>{200});
    CHECK(f.events.completes == 0);
    CHECK_FALSE(f.codec.reuseAllowed());
    auto r = f.feed("llo");
    CHECK(r.status == Status::Complete);
    CHECK(r.consumed == 3);
    CHECK(f.events.body == "hello");
    CHECK(f.events.completes == 1);
    CHECK(f.codec.reuseAllowed());
}

TEST_CASE("bytes after a complete response mean the connection is not reused", "[codec]") {
    Fixture f;
    auto r = f.feed("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 200 OK\r\n");
    CHECK(r.status == Status::Complete);
    CHECK(f.events.completes == 1);
    CHECK_FALSE(f.codec.reuseAllowed());
}

TEST_CASE("Connection: close, and HTTP/1.0 without keep-alive, end reuse", "[codec]") {
    SECTION("Connection: close") {
        Fixture f;
        f.feed("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
        CHECK(f.events.completes == 1);
        CHECK_FALSE(f.codec.reuseAllowed());
    }
    SECTION("HTTP/1.0") {
        Fixture f;
        f.feed("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        CHECK(f.events.completes == 1);
        CHECK_FALSE(f.codec.reuseAllowed());
    }
    SECTION("HTTP/1.0 with keep-alive") {
        Fixture f;
        f.feed("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n");
        CHECK(f.codec.reuseAllowed());
    }
}

TEST_CASE("a close-delimited body ends at EOF, complete but never reusable", "[codec]") {
    Fixture f;
    CHECK(f.feed("HTTP/1.1 200 OK\r\n\r\nsome body").status == Status::More);
    CHECK(f.events.completes == 0);
    CHECK(f.codec.decodeEof());
    CHECK(f.events.completes == 1);
    CHECK(f.events.body == "some body");
    CHECK_FALSE(f.codec.reuseAllowed());
}

TEST_CASE("EOF short of Content-Length, or before any response, is not a complete response",
          "[codec]") {
    SECTION("short body") {
        Fixture f;
        f.feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
        CHECK_FALSE(f.codec.decodeEof());
        CHECK(f.events.completes == 0);
        CHECK(f.codec.headSeen());
    }
    SECTION("nothing at all") {
        Fixture f;
        CHECK_FALSE(f.codec.decodeEof());
        CHECK_FALSE(f.codec.headSeen());
    }
}

TEST_CASE("responses without a body: to HEAD, 204 and 304 complete at the head", "[codec]") {
    SECTION("HEAD with a Content-Length") {
        Fixture f(true);
        auto r = f.feed("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
        CHECK(r.status == Status::Complete);
        CHECK(f.codec.reuseAllowed());
    }
    SECTION("204") {
        Fixture f;
        CHECK(f.feed("HTTP/1.1 204 No Content\r\n\r\n").status == Status::Complete);
        CHECK(f.codec.reuseAllowed());
    }
    SECTION("304") {
        Fixture f;
        CHECK(f.feed("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n").status ==
              Status::Complete);
        CHECK(f.codec.reuseAllowed());
    }
}

TEST_CASE("a 100 Continue head is reported, then the final response completes once", "[codec]") {
    Fixture f;
    auto r = f.feed("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok");
    CHECK(r.status == Status::Complete);
    CHECK(f.events.heads == std::vector<int>{100, 201});
    CHECK(f.events.completes == 1);
    CHECK(f.events.body == "ok");
    CHECK(f.codec.reuseAllowed());
}

TEST_CASE("a 101 hands the bytes after its head to the tunnel", "[codec]") {
    Fixture f;
    std::string bytes = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        "Connection: upgrade\r\n\r\nFRAME";
    auto r = f.feed(bytes);
    CHECK(r.status == Status::Upgrade);
    CHECK(bytes.substr(r.consumed) == "FRAME");
    CHECK(f.events.completes == 1);
}

TEST_CASE("a chunked response is de-chunked; trailers end it", "[codec]") {
    Fixture f;
    auto r = f.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "3\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n");
    CHECK(r.status == Status::Complete);
    CHECK(f.events.body == "abcde");
    CHECK(f.codec.reuseAllowed());
}

TEST_CASE("malformed responses are errors named by where they broke", "[codec]") {
    SECTION("not HTTP at all: a protocol error") {
        Fixture f;
        CHECK(f.feed("SSH-2.0-OpenSSH\r\n").status == Status::Error);
        CHECK(std::string(f.codec.error().token) == "http_protocol_error");
        CHECK(f.codec.error().status == 502);
    }
    SECTION("a bad chunk after the head: the response is incomplete") {
        Fixture f;
        auto r = f.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
        CHECK(r.status == Status::Error);
        CHECK(std::string(f.codec.error().token) == "http_response_incomplete");
    }
    SECTION("a head over the limit") {
        Recorder events;
        HttpParser::Limits limits;
        limits.max_head_size = 64;
        Http1ClientCodec codec(events, limits);
        codec.beginResponse(false);
        std::string bytes = "HTTP/1.1 200 OK\r\nX-Long: " + std::string(200, 'a') + "\r\n\r\n";
        CHECK(codec.decode(bytes.data(), bytes.size()).status == Status::Error);
        CHECK(std::string(codec.error().token) == "http_response_header_section_size");
    }
    SECTION("both Content-Length and Transfer-Encoding") {
        Fixture f;
        CHECK(f.feed("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n")
                  .status == Status::Error);
    }
}

TEST_CASE("a handler that ends the exchange stops decoding at once", "[codec]") {
    Fixture f;
    f.events.stop_at_head = true;
    auto r = f.feed("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc");
    CHECK(r.status == Status::Stopped);
    CHECK(f.events.body.empty());
    CHECK(f.events.completes == 0);
}

TEST_CASE("Keep-Alive: timeout=N is read from the response, in ms", "[codec]") {
    Fixture f;
    f.feed("HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5, max=100\r\nContent-Length: 0\r\n\r\n");
    CHECK(f.codec.keepAliveHintMs() == 5000);
    CHECK(parseKeepAliveTimeoutMs("max=3") == -1);
    CHECK(parseKeepAliveTimeoutMs("timeout= 2") == 2000); // a space after = is tolerated
    CHECK(parseKeepAliveTimeoutMs("timeout=x, timeout=7") == 7000);
}

TEST_CASE("one codec decodes the responses of successive requests on its connection",
          "[codec]") {
    Fixture f;
    f.feed("HTTP/1.1 200 OK\r\nKeep-Alive: timeout=9\r\nContent-Length: 1\r\n\r\na");
    CHECK(f.codec.reuseAllowed());
    f.codec.beginResponse(false);
    CHECK_FALSE(f.codec.complete());
    CHECK(f.codec.keepAliveHintMs() == -1);
    CHECK(f.feed("HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno").status ==
          Status::Complete);
    CHECK(f.events.heads == std::vector<int>{200, 404});
    CHECK(f.events.completes == 2);
    CHECK(f.codec.reuseAllowed());
}

TEST_CASE("a connection that once could not be reused stays so", "[codec]") {
    Fixture f;
    f.feed("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    f.codec.beginResponse(false);
    f.feed("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    CHECK_FALSE(f.codec.reuseAllowed());
}

TEST_CASE("the request body is re-framed piece by piece: chunked gets its own chunk lines",
          "[codec]") {
    std::string out;
    Http1ClientCodec::encodeRequestBody(out, "hello", 5, true);
    Http1ClientCodec::encodeRequestBody(out, "0123456789abcdef!", 17, true);
    Http1ClientCodec::encodeRequestEnd(out, true);
    CHECK(out == "5\r\nhello\r\n11\r\n0123456789abcdef!\r\n0\r\n\r\n");
    std::string plain;
    Http1ClientCodec::encodeRequestBody(plain, "hello", 5, false);
    Http1ClientCodec::encodeRequestEnd(plain, false);
    CHECK(plain == "hello");
}

TEST_CASE("the request head is rewritten for the hop: origin-form, Host, Via, no hop-by-hop",
          "[codec]") {
    MessageHead request;
    request.method = "GET";
    request.target = "http://origin.test:8080/x?y=1";
    request.headers = {{"Host", "origin.test:8080"},
                       {"Proxy-Connection", "keep-alive"},
                       {"Connection", "X-Secret"},
                       {"X-Secret", "1"},
                       {"Accept", "*/*"}};
    std::string out;
    Http1ClientCodec::encodeRequestHead(out, request, {"/x?y=1", "origin.test:8080", "pooled"});
    CHECK(out.rfind("GET /x?y=1 HTTP/1.1\r\n", 0) == 0);
    CHECK(out.find("Host: origin.test:8080\r\n") != std::string::npos);
    CHECK(out.find("Accept: */*\r\n") != std::string::npos);
    CHECK(out.find("Via: 1.1 pooled\r\n") != std::string::npos);
    CHECK(out.find("X-Secret") == std::string::npos);
    CHECK(out.find("Proxy-Connection") == std::string::npos);
    CHECK(out.substr(out.size() - 4) == "\r\n\r\n");
}
