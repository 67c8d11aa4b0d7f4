// IP address literals: the one parser behind "is this host an address?" (access rules,
// CONNECT targets, TLS to an IP upstream).
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string_view>

namespace pooled {

// The 4 (IPv4) or 16 (IPv6) network-order bytes of an address.
struct IpAddressBytes {
    std::array<unsigned char, 16> bytes{};
    size_t size = 0;
};

// `host` as an address if it is an IPv4 dotted quad or an IPv6 literal (brackets
// allowed), else nullopt: a host name.
std::optional<IpAddressBytes> parseIpLiteral(std::string_view host);

} // namespace pooled
