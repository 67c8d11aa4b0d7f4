// IP address literals: see ip_literal.h.
#include "net/ip_literal.h"

#include <arpa/inet.h>

#include <string>

namespace pooled {

std::optional<IpAddressBytes> parseIpLiteral(std::string_view host) {
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    if (host.empty() || host.size() > 64) // longer than any literal; inet_pton needs a C string
        return std::nullopt;
    const std::string text(host);
    IpAddressBytes ip;
    // Only the full dotted quad: "127.1" or "0x7f.0.0.1" stay names, as they are
    // everywhere else in pooled.
    if (inet_pton(AF_INET, text.c_str(), ip.bytes.data()) == 1) {
        ip.size = 4;
        return ip;
    }
    if (inet_pton(AF_INET6, text.c_str(), ip.bytes.data()) == 1) {
        ip.size = 16;
        return ip;
    }
    return std::nullopt;
}

} // namespace pooled
