// HTTP/1 on the upstream side, bytes <-> messages, with no socket in sight: encodes the
// request pooled sends (head rewritten for the hop, body re-framed chunk by chunk) and
// decodes the origin's response with llhttp into head / body / complete events, deciding
// on the way whether the connection may carry another request (bytes after the message,
// Connection: close, a close-delimited body, HTTP/1.0 without keep-alive). 1xx heads are
// reported and skipped; HEAD, 204 and 304 responses have no body (llhttp knows).
#pragma once

#include "http/headers.h"
#include "http/message.h"
#include "http/parser.h"
#include "http/proxy_status.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace pooled {

class Http1ClientCodec : private HttpParser::Handler {
public:
    // What a decoded response says. Each returns false when its handler ended the exchange
    // (the connection is being discarded): decoding stops at once.
    class Events {
    public:
        virtual ~Events() = default;
        // A 1xx (not 101) head, then later the final head; `head` may be moved from.
        virtual bool onResponseHead(MessageHead& head) = 0;
        virtual bool onResponseBody(const char* data, size_t length) = 0;
        // The final response is complete (reuseAllowed() is settled by then).
        virtual void onResponseComplete() = 0;
    };

    enum class Status {
        More,     // every byte parsed; the response goes on
        Complete, // onResponseComplete ran
        Upgrade,  // a 101: bytes past `consumed` belong to the tunnel
        Stopped,  // a handler returned false
        Error,    // error() says why; the connection is unusable
    };
    struct Result {
        Status status;
        size_t consumed;
    };

    Http1ClientCodec(Events& events, HttpParser::Limits limits);

    // --- request side: stateless, usable before a connection is attached.
    static void encodeRequestHead(std::string& out, const MessageHead& request,
                                  const UpstreamRequestHead& options);
    // One body piece as the client's parser delivered it, re-framed for this hop.
    static void encodeRequestBody(std::string& out, const char* data, size_t length,
                                  bool chunked);
    static void encodeRequestEnd(std::string& out, bool chunked);

    // --- response side.
    // A request is about to go out on this connection: expect its response.
    void beginResponse(bool head_request);
    Result decode(const char* data, size_t length);
    // The origin closed the connection. True when that ended a close-delimited response
    // (onResponseComplete ran); false when a response was cut or none was due.
    bool decodeEof();

    // Only once the response is complete: may the connection carry another request?
    bool reuseAllowed() const { return reusable_ && complete_; }
    bool complete() const { return complete_; }
    // The response's head was parsed (it may still be informational).
    bool headSeen() const { return parser_.headComplete(); }
    bool inMessage() const { return parser_.inMessage(); }
    // Keep-Alive: timeout=N of the final response, in ms; -1 when absent.
    int64_t keepAliveHintMs() const { return keepalive_hint_ms_; }
    const ProxyError& error() const { return error_; }
    const MessageHead& head() const { return parser_.head(); }

private:
    int onHead() override;
    int onBody(const char* data, size_t length) override;
    int onMessageComplete() override;

    Events& events_;
    HttpParser parser_;
    ProxyError error_;
    int64_t keepalive_hint_ms_ = -1;
    bool complete_ = false;
    bool informational_ = false;
    bool reusable_ = true;
    bool stopped_ = false;
};

// "timeout=5, max=100" -> 5000; -1 when there is no usable timeout.
int64_t parseKeepAliveTimeoutMs(std::string_view value);

} // namespace pooled
