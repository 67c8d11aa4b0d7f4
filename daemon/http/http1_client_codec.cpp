// Http1ClientCodec: see http1_client_codec.h.
#include "http/http1_client_codec.h"

#include <fmt/format.h>

#include <charconv>

namespace pooled {

int64_t parseKeepAliveTimeoutMs(std::string_view value) {
    size_t pos = 0;
    while ((pos = value.find("timeout", pos)) != std::string_view::npos) {
        size_t eq = value.find('=', pos);
        if (eq == std::string_view::npos)
            return -1;
        size_t start = eq + 1;
        while (start < value.size() && value[start] == ' ')
            ++start;
        int seconds = 0;
        auto [ptr, ec] = std::from_chars(value.data() + start, value.data() + value.size(), seconds);
        if (ec == std::errc{} && seconds >= 0)
            return static_cast<int64_t>(seconds) * 1000;
        pos = eq;
    }
    return -1;
}

Http1ClientCodec::Http1ClientCodec(Events& events, HttpParser::Limits limits)
    : events_(events), parser_(HttpParser::Kind::Response, *this, limits) {}

void Http1ClientCodec::encodeRequestHead(std::string& out, const MessageHead& request,
                                         const UpstreamRequestHead& options) {
    appendUpstreamRequestHead(out, request, options);
}

void Http1ClientCodec::encodeRequestBody(std::string& out, const char* data, size_t length,
                                         bool chunked) {
    if (!chunked) {
        out.append(data, length);
        return;
    }
    char size_line[24]; // no allocation per chunk
    auto end = fmt::format_to(size_line, "{:x}\r\n", length);
    out.append(size_line, static_cast<size_t>(end - size_line));
    out.append(data, length);
    out.append("\r\n");
}

void Http1ClientCodec::encodeRequestEnd(std::string& out, bool chunked) {
    if (chunked)
        out.append("0\r\n\r\n");
}

void Http1ClientCodec::beginResponse(bool head_request) {
    parser_.reset();
    parser_.setRequestIsHead(head_request);
    complete_ = false;
    informational_ = false;
    stopped_ = false;
    keepalive_hint_ms_ = -1;
    error_ = ProxyError{};
}

Http1ClientCodec::Result Http1ClientCodec::decode(const char* data, size_t length) {
    auto result = parser_.execute(data, length);
    if (stopped_)
        return {Status::Stopped, result.consumed};
    switch (result.status) {
    case HttpParser::Status::Ok:
        return {Status::More, result.consumed};
    case HttpParser::Status::Paused:
        // Complete. Anything after it is a response nobody asked for, so the connection is
        // marked before its user hears of the end and returns it to the pool.
        if (result.consumed < length)
            reusable_ = false;
        events_.onResponseComplete();
        return {Status::Complete, result.consumed};
    case HttpParser::Status::Upgrade:
        return {Status::Upgrade, result.consumed};
    case HttpParser::Status::Error:
        break;
    }
    reusable_ = false;
    if (parser_.error() == ParseError::HeadTooLarge)
        error_ = {502, "http_response_header_section_size", parser_.errorReason()};
    else if (complete_ || parser_.headComplete())
        error_ = {502, "http_response_incomplete", parser_.errorReason()};
    else
        error_ = {502, "http_protocol_error", parser_.errorReason()};
    return {Status::Error, result.consumed};
}

bool Http1ClientCodec::decodeEof() {
    reusable_ = false; // closed: whatever happens, it carries nothing more
    if (!parser_.inMessage() || !parser_.messageNeedsEof() || !parser_.finish())
        return false;
    if (!stopped_)
        events_.onResponseComplete();
    return true;
}

int Http1ClientCodec::onHead() {
    auto& head = parser_.head();
    if (const Header* ka = head.find("keep-alive"))
        keepalive_hint_ms_ = parseKeepAliveTimeoutMs(ka->value);
    informational_ = head.status >= 100 && head.status < 200 && head.status != 101;
    if (!events_.onResponseHead(head)) {
        stopped_ = true;
        return HPE_USER;
    }
    return 0;
}

int Http1ClientCodec::onBody(const char* data, size_t length) {
    if (!events_.onResponseBody(data, length)) {
        stopped_ = true;
        return HPE_USER;
    }
    return 0;
}

int Http1ClientCodec::onMessageComplete() {
    if (informational_) {
        informational_ = false;
        return 0; // the final response follows
    }
    complete_ = true;
    if (!parser_.shouldKeepAlive())
        reusable_ = false;
    if (parser_.head().status == 101) {
        events_.onResponseComplete();
        return 0; // llhttp returns HPE_PAUSED_UPGRADE next
    }
    // Reported once the parser returns (decode): only then is it known whether bytes
    // follow the response.
    return HPE_PAUSED;
}

} // namespace pooled
