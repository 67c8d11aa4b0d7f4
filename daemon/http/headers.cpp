// Header rules: see headers.h.
#include "http/headers.h"

#include <array>
#include <charconv>

namespace pooled {

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

// Always hop-by-hop, whether or not Connection names them. Content-Length and
// Transfer-Encoding are framing: pooled restates them itself.
constexpr std::array<std::string_view, 9> kHopByHop = {
    "connection",       "keep-alive", "proxy-connection", "proxy-authorization",
    "proxy-authenticate", "te",       "trailer",          "transfer-encoding",
    "upgrade"};

template <typename Int>
void appendNumber(std::string& out, Int value) {
    char digits[24];
    auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
    out.append(digits, static_cast<size_t>(end - digits));
}

// "Via: 1.1 pooled\r\n" for the version of the message received.
void appendVia(std::string& out, const MessageHead& head, std::string_view via_name) {
    out.append("Via: ");
    appendNumber(out, head.version_major);
    out.push_back('.');
    appendNumber(out, head.version_minor);
    out.push_back(' ');
    out.append(via_name);
    out.append("\r\n");
}

void appendHeader(std::string& out, std::string_view name, std::string_view value) {
    out.append(name);
    out.append(": ");
    out.append(value);
    out.append("\r\n");
}

} // namespace

ConnectionOptions parseConnectionOptions(const MessageHead& head) {
    ConnectionOptions options;
    for (const auto& h : head.headers) {
        if (!equalsIgnoreCase(h.name, "connection") &&
            !equalsIgnoreCase(h.name, "proxy-connection"))
            continue;
        std::string_view rest = h.value;
        while (!rest.empty()) {
            size_t comma = rest.find(',');
            std::string_view token = trim(rest.substr(0, comma));
            rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
            if (token.empty())
                continue;
            if (equalsIgnoreCase(token, "close"))
                options.close = true;
            else if (equalsIgnoreCase(token, "keep-alive"))
                options.keep_alive = true;
            else if (equalsIgnoreCase(token, "upgrade"))
                options.upgrade = true;
            else
                options.tokens.push_back(token);
        }
    }
    return options;
}

bool isHopByHop(std::string_view name, const ConnectionOptions& connection) {
    for (auto h : kHopByHop)
        if (equalsIgnoreCase(name, h))
            return true;
    for (const auto& token : connection.tokens)
        if (equalsIgnoreCase(name, token))
            return true;
    return false;
}

BodyFraming requestFraming(const MessageHead& request) {
    if (request.chunked)
        return BodyFraming::Chunked;
    if (request.content_length > 0)
        return BodyFraming::ContentLength;
    return BodyFraming::None; // requests are never close-delimited
}

void appendUpstreamRequestHead(std::string& out, const MessageHead& request,
                               const UpstreamRequestHead& options) {
    auto connection = parseConnectionOptions(request);
    out.append(request.method);
    out.push_back(' ');
    out.append(options.path);
    out.append(" HTTP/1.1\r\n");
    appendHeader(out, "Host", options.authority);
    for (const auto& h : request.headers) {
        if (isHopByHop(h.name, connection) || equalsIgnoreCase(h.name, "host") ||
            equalsIgnoreCase(h.name, "content-length") || equalsIgnoreCase(h.name, "expect"))
            continue;
        appendHeader(out, h.name, h.value);
    }
    if (request.chunked)
        appendHeader(out, "Transfer-Encoding", "chunked");
    else if (request.content_length >= 0) {
        out.append("Content-Length: ");
        appendNumber(out, request.content_length);
        out.append("\r\n");
    }
    appendVia(out, request, options.via_name);
    if (options.upgrade) {
        if (const Header* up = request.find("upgrade"))
            appendHeader(out, "Upgrade", up->value);
        appendHeader(out, "Connection", "upgrade");
    }
    out.append("\r\n");
}

BodyFraming clientFraming(const MessageHead& response, bool request_was_head,
                          bool http10_client) {
    if (request_was_head || response.status < 200 || response.status == 204 ||
        response.status == 304)
        return BodyFraming::None;
    if (response.chunked)
        return http10_client ? BodyFraming::CloseDelimited : BodyFraming::Chunked;
    if (response.content_length >= 0)
        return BodyFraming::ContentLength;
    // Close-delimited upstream: re-frame as chunked so a 1.1 client keeps its connection.
    return http10_client ? BodyFraming::CloseDelimited : BodyFraming::Chunked;
}

void appendClientResponseHead(std::string& out, const MessageHead& response,
                              const ClientResponseHead& options) {
    auto connection = parseConnectionOptions(response);
    out.append("HTTP/1.1 ");
    appendNumber(out, response.status);
    out.push_back(' ');
    out.append(response.reason);
    out.append("\r\n");
    bool keep_length = options.framing == BodyFraming::ContentLength ||
                       options.framing == BodyFraming::None;
    for (const auto& h : response.headers) {
        if (isHopByHop(h.name, connection))
            continue;
        // A Content-Length of a HEAD/304 answer describes the resource: keep it.
        if (equalsIgnoreCase(h.name, "content-length") && !keep_length)
            continue;
        appendHeader(out, h.name, h.value);
    }
    if (options.framing == BodyFraming::Chunked)
        appendHeader(out, "Transfer-Encoding", "chunked");
    appendVia(out, response, options.via_name);
    if (options.upgrade) {
        if (const Header* up = response.find("upgrade"))
            appendHeader(out, "Upgrade", up->value);
        appendHeader(out, "Connection", "upgrade");
    } else if (!options.keep_alive || options.framing == BodyFraming::CloseDelimited) {
        appendHeader(out, "Connection", "close");
    } else if (options.http10_client) {
        appendHeader(out, "Connection", "keep-alive");
    }
    out.append("\r\n");
}

} // namespace pooled
