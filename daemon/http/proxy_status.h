// Errors pooled answers itself: a status, an RFC 9209 Proxy-Status error token
// and a short detail, rendered as a small text/plain response.
#pragma once

#include <string>
#include <string_view>

namespace pooled {

struct ProxyError {
    int status = 502;
    const char* token = "proxy_internal_error"; // RFC 9209 error type
    std::string detail;
};

// The Proxy-Status field value: `pooled; error=TOKEN; details="..."`.
std::string proxyStatusValue(std::string_view proxy_name, const ProxyError& error);

// A complete response; `close` adds Connection: close.
std::string renderErrorResponse(std::string_view proxy_name, const ProxyError& error, bool close);

const char* reasonPhrase(int status);

} // namespace pooled
