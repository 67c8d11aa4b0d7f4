// Certificate checks for upstreams addressed by IP literal. mbedTLS 2.28 verifies only
// dNSName SANs and the CN, and would send the literal as SNI, which RFC 6066 3 forbids;
// for an IP, pooled sends no SNI and matches the leaf's iPAddress SANs itself
// (RFC 9110 4.3.5: the address byte for byte, never the CN).
#pragma once

#include <mbedtls/x509.h>

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

// Whether a subjectAltName list, as mbedTLS keeps it (raw tagged entries), holds an
// iPAddress ([7]) entry equal to `ip`.
bool subjectAltNamesHoldIp(const mbedtls_x509_sequence* names, const IpAddressBytes& ip);

} // namespace pooled
