// Specification of HttpParser, the llhttp wrapper both sides of the proxy parse with: what it
// hands its Handler, how it pauses between pipelined messages, which request-smuggling vectors
// it refuses, its size limits, and the framing rules of responses.
#include "http/parser.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

using namespace pooled;

namespace {

// Records every Handler call. Pauses at each message end, as the daemon does.
struct Recorder : HttpParser::Handler {
    HttpParser parser;
    std::vector<MessageHead> heads;
    std::vector<std::string> bodies; // one per message that had a head
    std::vector<std::string> calls;  // "head", "body", "complete" in order
    int completed = 0;
    bool pause_on_complete = true;

    explicit Recorder(HttpParser::Kind kind, HttpParser::Limits limits = {})
        : parser(kind, *this, limits) {}

    int onHead() override {
        calls.push_back("head");
        heads.push_back(parser.head());
        bodies.emplace_back();
        return 0;
    }
    int onBody(const char* data, size_t length) override {
        calls.push_back("body");
        bodies.back().append(data, length);
        return 0;
    }
    int onMessageComplete() override {
        calls.push_back("complete");
        ++completed;
        return pause_on_complete ? HPE_PAUSED : 0;
    }

    // Feeds `bytes` in pieces of `piece` bytes, resuming after every pause, and stops at the
    // first error or upgrade. Returns the last status.
    HttpParser::Status feed(const std::string& bytes, size_t piece = SIZE_MAX) {
        size_t pos = 0;
        HttpParser::Status status = HttpParser::Status::Ok;
        while (pos < bytes.size()) {
            size_t n = std::min(piece, bytes.size() - pos);
            auto result = parser.execute(bytes.data() + pos, n);
            status = result.status;
            if (status == HttpParser::Status::Error || status == HttpParser::Status::Upgrade)
                return status;
            REQUIRE(result.consumed <= n);
            pos += result.consumed;
            if (status == HttpParser::Status::Paused)
                parser.resume();
        }
        return status;
    }
};

// One request; returns the parser's error (None when it parsed completely).
ParseError requestError(const std::string& bytes, HttpParser::Limits limits = {}) {
    Recorder r(HttpParser::Kind::Request, limits);
    auto status = r.feed(bytes);
    if (status == HttpParser::Status::Error)
        return r.parser.error();
    INFO(bytes);
    CHECK(r.completed >= 1);
    return ParseError::None;
}

ParseError responseError(const std::string& bytes) {
    Recorder r(HttpParser::Kind::Response);
    auto status = r.feed(bytes);
    if (status == HttpParser::Status::Error)
        return r.parser.error();
    return ParseError::None;
}

bool rejected(const std::string& bytes) {
    return requestError(bytes) != ParseError::None;
}

} // namespace

TEST_CASE("a simple GET yields one head and one completion", "[http]") {
    Recorder r(HttpParser::Kind::Request);
    std::string bytes = "GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nX-Mixed-Case: Value \r\n\r\n";
    auto result = r.parser.execute(bytes.data(), bytes.size());
    CHECK(result.status == HttpParser::Status::Paused);
    CHECK(result.consumed == bytes.size());
    CHECK(r.calls == std::vector<std::string>{"head", "complete"});
    const auto& h = r.heads.at(0);
    CHECK(h.method == "GET");
    CHECK(h.target == "/a?b=c");
    CHECK(h.version_major == 1);
    CHECK(h.version_minor == 1);
    REQUIRE(h.headers.size() == 2);
    CHECK(h.headers[0].name == "Host");
    CHECK(h.headers[0].value == "example.com");
    CHECK(h.headers[1].name == "X-Mixed-Case");
    CHECK(h.headers[1].value == "Value"); // surrounding whitespace trimmed
    CHECK(h.content_length == -1);
    CHECK_FALSE(h.chunked);
    CHECK(h.keep_alive);
    CHECK_FALSE(r.parser.inMessage());
}

TEST_CASE("an empty header value does not merge into the next header's name", "[http]") {
    Recorder r(HttpParser::Kind::Request);
    REQUIRE(r.feed("GET / HTTP/1.1\r\nX-Empty:\r\nX-Next: 1\r\nX-Blank:   \r\n\r\n") ==
            HttpParser::Status::Paused);
    const auto& h = r.heads.at(0);
    REQUIRE(h.headers.size() == 3);
    CHECK(h.headers[0].name == "X-Empty");
    CHECK(h.headers[0].value.empty());
    CHECK(h.headers[1].name == "X-Next");
    CHECK(h.headers[1].value == "1");
    CHECK(h.headers[2].name == "X-Blank");
    CHECK(h.headers[2].value.empty());
}

TEST_CASE("keep-alive follows the version and the Connection header", "[http]") {
    auto keepAlive = [](const std::string& bytes) {
        Recorder r(HttpParser::Kind::Request);
        r.feed(bytes);
        REQUIRE(r.heads.size() == 1);
        return r.heads[0].keep_alive;
    };
    CHECK_FALSE(keepAlive("GET / HTTP/1.0\r\n\r\n"));
    CHECK(keepAlive("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    CHECK(keepAlive("GET / HTTP/1.1\r\n\r\n"));
    CHECK_FALSE(keepAlive("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
}

TEST_CASE("bytes after a message that ends the connection are an error", "[http]") {
    Recorder r(HttpParser::Kind::Request);
    CHECK(r.feed("GET / HTTP/1.1\r\nConnection: close\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n") ==
          HttpParser::Status::Error);
    CHECK(r.heads.size() == 1);
}

TEST_CASE("pipelined requests pause at each message end and resume where they stopped",
          "[http]") {
    Recorder r(HttpParser::Kind::Request);
    std::string first = "POST /1 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
    std::string second = "GET /2 HTTP/1.1\r\n\r\n";
    std::string bytes = first + second;

    auto one = r.parser.execute(bytes.data(), bytes.size());
    REQUIRE(one.status == HttpParser::Status::Paused);
    CHECK(one.consumed == first.size());
    CHECK(r.completed == 1);
    CHECK(r.heads.at(0).content_length == 5);
    CHECK(r.bodies.at(0) == "hello");

    r.parser.resume();
    auto two = r.parser.execute(bytes.data() + one.consumed, bytes.size() - one.consumed);
    REQUIRE(two.status == HttpParser::Status::Paused);
    CHECK(two.consumed == second.size());
    CHECK(r.completed == 2);
    CHECK(r.heads.at(1).target == "/2");
    CHECK(r.bodies.at(1).empty());
}

TEST_CASE("a chunked body is delivered in pieces and reassembles exactly", "[http]") {
    std::string bytes = "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "5\r\nhello\r\n"
                        "7;ext=1\r\n, world\r\n"
                        "0\r\nX-Trailer: t\r\n\r\n"
                        "GET /next HTTP/1.1\r\n\r\n";
    size_t piece = GENERATE(size_t{1}, size_t{2}, size_t{7}, SIZE_MAX);
    INFO("piece size " << piece);
    Recorder r(HttpParser::Kind::Request);
    CHECK(r.feed(bytes, piece) != HttpParser::Status::Error);
    REQUIRE(r.completed == 2);
    const auto& h = r.heads.at(0);
    CHECK(h.chunked);
    CHECK(h.content_length == -1);
    REQUIRE(h.headers.size() == 2);
    CHECK(h.headers[0].name == "Host");
    CHECK(h.headers[1].name == "Transfer-Encoding");
    CHECK(h.headers[1].value == "chunked");
    CHECK(r.bodies.at(0) == "hello, world");
    CHECK(r.heads.at(1).target == "/next");
    if (piece == 1)
        CHECK(std::count(r.calls.begin(), r.calls.end(), "body") == 12);
}

TEST_CASE("a Content-Length body split byte by byte arrives whole", "[http]") {
    Recorder r(HttpParser::Kind::Request);
    CHECK(r.feed("PUT /x HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789", 1) ==
          HttpParser::Status::Paused);
    REQUIRE(r.completed == 1);
    CHECK(r.bodies.at(0) == "0123456789");
    CHECK(r.heads.at(0).content_length == 10);
}

TEST_CASE("an upgrade request and CONNECT stop the parser with Status::Upgrade", "[http]") {
    Recorder ws(HttpParser::Kind::Request);
    ws.pause_on_complete = false;
    CHECK(ws.feed("GET /chat HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nraw") ==
          HttpParser::Status::Upgrade);
    CHECK(ws.heads.at(0).upgrade);

    Recorder tunnel(HttpParser::Kind::Request);
    tunnel.pause_on_complete = false;
    CHECK(tunnel.feed("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16") ==
          HttpParser::Status::Upgrade);
    CHECK(tunnel.heads.at(0).method == "CONNECT");
    CHECK(tunnel.heads.at(0).target == "example.com:443");
}

// --- Request smuggling: every message two parsers could frame differently is refused. ---

TEST_CASE("smuggling: Content-Length together with Transfer-Encoding is rejected", "[http]") {
    CHECK(rejected("POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "0\r\n\r\n"));
    CHECK(rejected("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
                   "0\r\n\r\n"));
}

TEST_CASE("smuggling: a duplicate Content-Length is rejected", "[http]") {
    CHECK(rejected("POST / HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde"));
    CHECK(rejected("POST / HTTP/1.1\r\nContent-Length: 4, 5\r\n\r\nabcde"));
}

TEST_CASE("smuggling: transfer-codings other than a lone \"chunked\" are rejected", "[http]") {
    SECTION("xchunked") {
        CHECK(requestError("POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n") !=
              ParseError::None);
    }
    SECTION("chunked, identity") {
        CHECK(requestError("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n"
                           "0\r\n\r\n") != ParseError::None);
    }
    SECTION("identity, chunked") {
        CHECK(requestError("POST / HTTP/1.1\r\nTransfer-Encoding: identity, chunked\r\n\r\n"
                           "0\r\n\r\n") == ParseError::BadTransferCoding);
    }
    SECTION("gzip, chunked") {
        CHECK(requestError("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                           "0\r\n\r\n") == ParseError::BadTransferCoding);
    }
    SECTION("two Transfer-Encoding headers, even both chunked") {
        CHECK(requestError("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n") != ParseError::None);
    }
    SECTION("in a response too") {
        CHECK(responseError("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc") ==
              ParseError::BadTransferCoding);
        CHECK(responseError("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n") !=
              ParseError::None);
    }
}

TEST_CASE("smuggling: \" chunked\" with leading whitespace is read as chunked", "[http]") {
    // Leading OWS is not part of a field value (RFC 9110 5.5): both parsers see "chunked".
    Recorder r(HttpParser::Kind::Request);
    REQUIRE(r.feed("POST / HTTP/1.1\r\nTransfer-Encoding:  \tchunked \r\n\r\n3\r\nabc\r\n"
                   "0\r\n\r\n") == HttpParser::Status::Paused);
    REQUIRE(r.completed == 1);
    CHECK(r.heads.at(0).chunked);
    CHECK(r.heads.at(0).headers.at(0).value == "chunked");
    CHECK(r.bodies.at(0) == "abc");
}

TEST_CASE("smuggling: \"Chunked\" in another case is read as chunked", "[http]") {
    Recorder r(HttpParser::Kind::Request);
    REQUIRE(r.feed("POST / HTTP/1.1\r\nTransfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n") ==
            HttpParser::Status::Paused);
    CHECK(r.heads.at(0).chunked);
}

TEST_CASE("smuggling: obs-fold never changes the framing", "[http]") {
    CHECK(rejected("POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n chunked\r\n\r\n"
                   "0\r\n\r\n"));
    CHECK(rejected("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n \r\n\r\n0\r\n\r\n"));
    CHECK(rejected("POST / HTTP/1.1\r\nContent-Length: 1\r\n 2\r\n\r\nabcdefghijkl"));
}

TEST_CASE("smuggling: obs-fold continuation lines are rejected", "[http]") {
    // llhttp would unfold "a\r\n b" to "a b"; RFC 9112 5.2 allows that or a 400: pooled rejects.
    CHECK(rejected("GET / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n"));
    CHECK(rejected("GET / HTTP/1.1\r\nX-A: a\r\n\tb\r\n\r\n"));
    CHECK(rejected("GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n"));
    CHECK(rejected("GET / HTTP/1.1\r\nX-A:\r\n b\r\n\r\n"));
    CHECK(rejected("POST / HTTP/1.1\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"));
    CHECK(responseError("HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n") !=
          ParseError::None);
}

TEST_CASE("smuggling: bare LF line endings are rejected", "[http]") {
    CHECK(rejected("GET / HTTP/1.1\nHost: a\n\n"));
    CHECK(rejected("GET / HTTP/1.1\r\nHost: a\n\r\n"));
    CHECK(rejected("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n"));
}

TEST_CASE("smuggling: a bare LF ending the header section is rejected", "[http]") {
    // llhttp, even in strict mode, takes "\r\n\n" as the end of a head; HttpParser does not.
    CHECK(rejected("GET / HTTP/1.1\r\nHost: a\r\n\n"));
    CHECK(rejected("POST / HTTP/1.1\r\nContent-Length: 3\r\n\nabc"));
}

TEST_CASE("a bare LF ending the header section is found however the bytes are split", "[http]") {
    // The scan jumps from LF to LF and keeps only the bytes before each across reads.
    size_t piece = GENERATE(size_t{1}, size_t{2}, size_t{3}, size_t{5});
    INFO("piece size " << piece);
    for (std::string bytes : {"GET / HTTP/1.1\r\nHost: a\r\n\n", "GET / HTTP/1.1\r\nX: \n\r\n\n"}) {
        Recorder r(HttpParser::Kind::Request);
        CHECK(r.feed(bytes, piece) == HttpParser::Status::Error);
    }
    Recorder ok(HttpParser::Kind::Request);
    CHECK(ok.feed("GET / HTTP/1.1\r\nHost: a\r\nX-Long-Header-Value: abcdefghij\r\n\r\n", piece) ==
          HttpParser::Status::Paused);
}

TEST_CASE("bodies may hold any bytes, bare LFs included", "[http]") {
    std::string body = "a\r\n\nb\n\n\r\n\r\n\n";
    std::string bytes = "POST / HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) +
                        "\r\n\r\n" + body +
                        "POST /2 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" +
                        "3\r\n\n\r\n\r\n0\r\n\r\n";
    size_t piece = GENERATE(size_t{1}, size_t{3}, SIZE_MAX);
    INFO("piece size " << piece);
    Recorder r(HttpParser::Kind::Request);
    CHECK(r.feed(bytes, piece) == HttpParser::Status::Paused);
    REQUIRE(r.completed == 2);
    CHECK(r.bodies.at(0) == body);
    CHECK(r.bodies.at(1) == "\n\r\n");
}

TEST_CASE("smuggling: control bytes in a header value or name are rejected", "[http]") {
    CHECK(rejected(std::string("GET / HTTP/1.1\r\nX-A: a\0b\r\n\r\n", 28)));
    CHECK(rejected("GET / HTTP/1.1\r\nX-A: a\x01" "b\r\n\r\n"));
    CHECK(rejected("GET / HTTP/1.1\r\nX-A: a\x7f" "b\r\n\r\n"));
    CHECK(rejected("GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n"));
    CHECK(rejected(std::string("GET / HTTP/1.1\r\nX-\0A: b\r\n\r\n", 27)));
    CHECK(rejected("GET / HTTP/1.1\r\nX-\x01" "A: b\r\n\r\n"));
    CHECK(rejected("GET / HTTP/1.1\r\nX A: b\r\n\r\n"));
    // A horizontal tab is allowed inside a value.
    CHECK_FALSE(rejected("GET / HTTP/1.1\r\nX-A: a\tb\r\n\r\n"));
}

TEST_CASE("smuggling: whitespace between a header name and the colon is rejected", "[http]") {
    CHECK(rejected("GET / HTTP/1.1\r\nHost : a\r\n\r\n"));
    CHECK(rejected("POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\n"
                   "abc"));
    CHECK(rejected("POST / HTTP/1.1\r\nContent-Length\t: 3\r\n\r\nabc"));
}

TEST_CASE("smuggling: an overflowing chunk size is rejected", "[http]") {
    CHECK(rejected("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "ffffffffffffffffff\r\nabc\r\n0\r\n\r\n"));
    CHECK(rejected("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n\r\n"));
    CHECK(rejected("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n"));
}

TEST_CASE("smuggling: a negative, non-numeric or overflowing Content-Length is rejected",
          "[http]") {
    CHECK(rejected("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"));
    CHECK(rejected("POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\nabc"));
    CHECK(rejected("POST / HTTP/1.1\r\nContent-Length: 3a\r\n\r\nabc"));
    CHECK(rejected("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n"));
    CHECK(rejected("POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n"));
}

TEST_CASE("smuggling: a Content-Length past int64 is rejected, not read as absent", "[http]") {
    CHECK(requestError("POST / HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n"
                       "GET /smuggled HTTP/1.1\r\n\r\n") == ParseError::Malformed);
    CHECK(requestError("POST / HTTP/1.1\r\nContent-Length: 9223372036854775808\r\n\r\n") ==
          ParseError::Malformed);
    CHECK(responseError("HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775808\r\n\r\n") ==
          ParseError::Malformed);
}

TEST_CASE("smuggling: Transfer-Encoding in an HTTP/1.0 request is rejected", "[http]") {
    CHECK(requestError("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n") ==
          ParseError::BadTransferCoding);
}

TEST_CASE("max_body_size refuses a declared Content-Length or chunk size before its bytes",
          "[http]") {
    HttpParser::Limits limits;
    limits.max_body_size = 10;
    CHECK(requestError("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789", limits) ==
          ParseError::None);
    CHECK(requestError("POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", limits) ==
          ParseError::BodyTooLarge);
    CHECK(requestError("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "4\r\nabcd\r\n6\r\nefghij\r\n0\r\n\r\n",
                       limits) == ParseError::None);
    Recorder r(HttpParser::Kind::Request, limits);
    CHECK(r.feed("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n"
                 "7\r\n") == HttpParser::Status::Error);
    CHECK(r.parser.error() == ParseError::BodyTooLarge);
    CHECK(r.bodies.at(0) == "abcd");
    // No limit by default.
    Recorder unlimited(HttpParser::Kind::Request);
    CHECK(unlimited.feed("POST / HTTP/1.1\r\nContent-Length: 1000000000000000\r\n\r\nabc") ==
          HttpParser::Status::Ok);
}

TEST_CASE("chunk extensions longer than 16 KiB in a message are BodyTooLarge", "[http]") {
    std::string head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    CHECK(requestError(head + "1;a=" + std::string(1000, 'x') + "\r\na\r\n0\r\n\r\n") ==
          ParseError::None);
    CHECK(requestError(head + "1;a=" + std::string(17000, 'x') + "\r\na\r\n0\r\n\r\n") ==
          ParseError::BodyTooLarge);
    std::string many;
    for (int i = 0; i < 20; ++i)
        many += "1;a=" + std::string(1000, 'x') + "\r\na\r\n";
    CHECK(requestError(head + many + "0\r\n\r\n") == ParseError::BodyTooLarge);
}

TEST_CASE("an unknown method that is a token is MethodNotImplemented, else Malformed", "[http]") {
    CHECK(requestError("get / HTTP/1.1\r\n\r\n") == ParseError::MethodNotImplemented);
    CHECK(requestError("FROB /x HTTP/1.1\r\n\r\n") == ParseError::MethodNotImplemented);
    CHECK(requestError("GETX / HTTP/1.0\r\n\r\n") == ParseError::MethodNotImplemented);
    CHECK(requestError("G(ET / HTTP/1.1\r\n\r\n") == ParseError::Malformed);
    CHECK(requestError(" / HTTP/1.1\r\n\r\n") == ParseError::Malformed);
    CHECK(requestError("THIS IS NOT HTTP\r\n\r\n") == ParseError::Malformed);
    CHECK(requestError("FROB / HTTP/1.1") == ParseError::Malformed); // line not complete
}

TEST_CASE("a rejected message reports an error reason and where parsing stopped", "[http]") {
    Recorder r(HttpParser::Kind::Request);
    std::string bytes = "GET / HTTP/1.1\r\nX-A: a\x01" "b\r\n\r\n";
    auto result = r.parser.execute(bytes.data(), bytes.size());
    CHECK(result.status == HttpParser::Status::Error);
    CHECK(r.parser.error() == ParseError::Malformed);
    CHECK_FALSE(r.parser.errorReason().empty());
    CHECK(result.consumed < bytes.size());
    CHECK(r.heads.empty());
}

// --- Limits ---

TEST_CASE("a head larger than max_head_size is HeadTooLarge", "[http]") {
    HttpParser::Limits limits;
    limits.max_head_size = 200;
    CHECK(requestError("GET / HTTP/1.1\r\nX-A: " + std::string(100, 'a') + "\r\n\r\n", limits) ==
          ParseError::None);
    CHECK(requestError("GET / HTTP/1.1\r\nX-A: " + std::string(300, 'a') + "\r\n\r\n", limits) ==
          ParseError::HeadTooLarge);
    // Many small headers add up.
    std::string many = "GET / HTTP/1.1\r\n";
    for (int i = 0; i < 20; ++i)
        many += "X-" + std::to_string(i) + ": 0123456789\r\n";
    CHECK(requestError(many + "\r\n", limits) == ParseError::HeadTooLarge);
}

TEST_CASE("a head growing past the limit byte by byte is stopped before it ends", "[http]") {
    HttpParser::Limits limits;
    limits.max_head_size = 64;
    Recorder r(HttpParser::Kind::Request, limits);
    std::string endless = "GET / HTTP/1.1\r\nX-A: " + std::string(1000, 'a');
    CHECK(r.feed(endless, 1) == HttpParser::Status::Error);
    CHECK(r.parser.error() == ParseError::HeadTooLarge);
}

TEST_CASE("more than max_header_count headers is HeadTooLarge", "[http]") {
    HttpParser::Limits limits;
    limits.max_header_count = 3;
    CHECK(requestError("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", limits) ==
          ParseError::None);
    CHECK(requestError("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", limits) ==
          ParseError::HeadTooLarge);
}

TEST_CASE("a request target longer than max_uri_length is UriTooLong", "[http]") {
    HttpParser::Limits limits;
    limits.max_uri_length = 16;
    CHECK(requestError("GET /" + std::string(15, 'a') + " HTTP/1.1\r\n\r\n", limits) ==
          ParseError::None);
    CHECK(requestError("GET /" + std::string(16, 'a') + " HTTP/1.1\r\n\r\n", limits) ==
          ParseError::UriTooLong);
}

// --- Responses ---

TEST_CASE("a response to HEAD has no body even with a Content-Length", "[http]") {
    Recorder r(HttpParser::Kind::Response);
    r.parser.setRequestIsHead(true);
    std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
    std::string bytes = head + "HTTP/1.1 404 Not Found\r\n";
    auto result = r.parser.execute(bytes.data(), bytes.size());
    REQUIRE(result.status == HttpParser::Status::Paused);
    CHECK(result.consumed == head.size());
    CHECK(r.calls == std::vector<std::string>{"head", "complete"});
    CHECK(r.heads.at(0).content_length == 5);
}

TEST_CASE("204 and 304 responses have no body", "[http]") {
    for (std::string status : {"204 No Content", "304 Not Modified"}) {
        INFO(status);
        Recorder r(HttpParser::Kind::Response);
        std::string head = "HTTP/1.1 " + status + "\r\nETag: \"e\"\r\n\r\n";
        std::string bytes = head + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        auto result = r.parser.execute(bytes.data(), bytes.size());
        REQUIRE(result.status == HttpParser::Status::Paused);
        CHECK(result.consumed == head.size());
        CHECK(r.calls == std::vector<std::string>{"head", "complete"});
    }
}

TEST_CASE("1xx, 204 and 304 responses have no body even with a Content-Length", "[http]") {
    // llhttp alone frames these by Content-Length (RFC 9112 6.3 says they never have a body):
    // a 304 with its representation's Content-Length would wait for a body or eat the next one.
    for (std::string status : {"100 Continue", "204 No Content", "304 Not Modified"}) {
        INFO(status);
        Recorder r(HttpParser::Kind::Response);
        std::string head = "HTTP/1.1 " + status + "\r\nContent-Length: 5\r\n\r\n";
        std::string bytes = head + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        auto result = r.parser.execute(bytes.data(), bytes.size());
        REQUIRE(result.status == HttpParser::Status::Paused);
        CHECK(result.consumed == head.size());
        CHECK(r.calls == std::vector<std::string>{"head", "complete"});
    }
}

TEST_CASE("1xx responses precede the final response on the same stream", "[http]") {
    Recorder r(HttpParser::Kind::Response);
    r.pause_on_complete = false;
    CHECK(r.feed("HTTP/1.1 100 Continue\r\n\r\n"
                 "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
                 "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") == HttpParser::Status::Ok);
    REQUIRE(r.heads.size() == 3);
    CHECK(r.heads[0].status == 100);
    CHECK(r.heads[1].status == 103);
    CHECK(r.heads[2].status == 200);
    CHECK(r.heads[2].reason == "OK");
    CHECK(r.bodies[2] == "ok");
    CHECK(r.completed == 3);
}

TEST_CASE("a close-delimited response completes on finish()", "[http]") {
    Recorder r(HttpParser::Kind::Response);
    r.pause_on_complete = false;
    CHECK(r.feed("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", 5) ==
          HttpParser::Status::Ok);
    CHECK(r.completed == 0);
    CHECK(r.parser.inMessage());
    CHECK(r.parser.messageNeedsEof());
    CHECK(r.heads.at(0).content_length == -1);
    CHECK_FALSE(r.heads.at(0).chunked);
    CHECK(r.parser.finish());
    CHECK(r.completed == 1);
    CHECK(r.bodies.at(0) == "until the end");
}

TEST_CASE("finish() completes a close-delimited response when the handler pauses at its end",
          "[http]") {
    // llhttp_finish returns the handler's HPE_PAUSED; that is still a complete message.
    Recorder r(HttpParser::Kind::Response);
    CHECK(r.feed("HTTP/1.1 200 OK\r\n\r\nuntil the end") == HttpParser::Status::Ok);
    CHECK(r.parser.finish());
    CHECK(r.completed == 1);
    CHECK(r.bodies.at(0) == "until the end");
}

TEST_CASE("finish() on a response cut short of its Content-Length returns false", "[http]") {
    Recorder r(HttpParser::Kind::Response);
    CHECK(r.feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort") == HttpParser::Status::Ok);
    CHECK(r.parser.inMessage());
    CHECK_FALSE(r.parser.messageNeedsEof());
    CHECK_FALSE(r.parser.finish());
    CHECK(r.completed == 0);
}

TEST_CASE("finish() on a chunked response cut mid-chunk returns false", "[http]") {
    Recorder r(HttpParser::Kind::Response);
    CHECK(r.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\nshort") ==
          HttpParser::Status::Ok);
    CHECK_FALSE(r.parser.finish());
    CHECK(r.completed == 0);
}

TEST_CASE("finish() between messages is a clean end", "[http]") {
    Recorder r(HttpParser::Kind::Response);
    r.pause_on_complete = false;
    CHECK(r.feed("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") == HttpParser::Status::Ok);
    CHECK_FALSE(r.parser.inMessage());
    CHECK(r.parser.finish());
}

TEST_CASE("responses with malformed framing are rejected like requests", "[http]") {
    CHECK(responseError("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok") !=
          ParseError::None);
    CHECK(responseError("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n") != ParseError::None);
    CHECK(responseError("HTTP/1.1 200 OK\nContent-Length: 0\n\n") != ParseError::None);
    CHECK(responseError("HTTP/1.1 2000 OK\r\n\r\n") != ParseError::None);
}

TEST_CASE("reset() makes a parser ready for a new message after an error", "[http]") {
    Recorder r(HttpParser::Kind::Request);
    CHECK(r.feed("GET / HTTP/1.1\r\nX A: b\r\n\r\n") == HttpParser::Status::Error);
    r.parser.reset();
    CHECK(r.parser.error() == ParseError::None);
    CHECK(r.feed("GET /again HTTP/1.1\r\n\r\n") == HttpParser::Status::Paused);
    CHECK(r.heads.back().target == "/again");
}
