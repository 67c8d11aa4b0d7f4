// IP literal detection and iPAddress SAN matching: see ip_san.h.
#include "tls/ip_san.h"

#include <mbedtls/asn1.h>

#include <arpa/inet.h>

#include <cstring>
#include <string>

namespace pooled {

namespace {

// GeneralName iPAddress: context-specific, primitive, tag number 7.
constexpr int kIpAddressTag = MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7;

} // namespace

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

bool subjectAltNamesHoldIp(const mbedtls_x509_sequence* names, const IpAddressBytes& ip) {
    for (const mbedtls_x509_sequence* n = names; n != nullptr; n = n->next) {
        // Sizes must agree too: an IPv4-mapped IPv6 SAN is a different identity.
        if (n->buf.tag == kIpAddressTag && n->buf.p != nullptr && n->buf.len == ip.size &&
            std::memcmp(n->buf.p, ip.bytes.data(), ip.size) == 0)
            return true;
    }
    return false;
}

} // namespace pooled
