// Error responses with Proxy-Status: see proxy_status.h.
#include "http/proxy_status.h"

#include <fmt/format.h>

namespace pooled {

namespace {

// sf-string (RFC 8941): printable ASCII, with " and \ escaped.
std::string quoteSfString(std::string_view text) {
    std::string out = "\"";
    for (char c : text) {
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(c);
        } else if (c >= 0x20 && c < 0x7f) {
            out.push_back(c);
        } else {
            out.push_back('?');
        }
    }
    out.push_back('"');
    return out;
}

} // namespace

const char* reasonPhrase(int status) {
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Error";
    }
}

std::string proxyStatusValue(std::string_view proxy_name, const ProxyError& error) {
    std::string value = fmt::format("{}; error={}", proxy_name, error.token);
    if (!error.detail.empty())
        value += "; details=" + quoteSfString(error.detail);
    return value;
}

std::string renderErrorResponse(std::string_view proxy_name, const ProxyError& error,
                                bool close) {
    std::string body = fmt::format("{} {}: {}{}{}\n", error.status, reasonPhrase(error.status),
                                   error.token, error.detail.empty() ? "" : ": ", error.detail);
    return fmt::format("HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                       "Content-Length: {}\r\nProxy-Status: {}\r\n{}\r\n{}",
                       error.status, reasonPhrase(error.status), body.size(),
                       proxyStatusValue(proxy_name, error),
                       close ? "Connection: close\r\n" : "", body);
}

} // namespace pooled
