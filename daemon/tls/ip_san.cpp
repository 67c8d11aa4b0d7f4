// iPAddress SAN matching: see ip_san.h.
#include "tls/ip_san.h"

#include <mbedtls/asn1.h>

#include <cstring>

namespace pooled {

namespace {

// GeneralName iPAddress: context-specific, primitive, tag number 7.
constexpr int kIpAddressTag = MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7;

} // namespace

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
