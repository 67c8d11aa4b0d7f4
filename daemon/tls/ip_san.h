// Certificate checks for upstreams addressed by IP literal. mbedTLS 2.28 verifies only
// dNSName SANs and the CN, and would send the literal as SNI, which RFC 6066 3 forbids;
// for an IP, pooled sends no SNI and matches the leaf's iPAddress SANs itself
// (RFC 9110 4.3.5: the address byte for byte, never the CN).
#pragma once

#include "net/ip_literal.h"

#include <mbedtls/x509.h>

namespace pooled {

// Whether a subjectAltName list, as mbedTLS keeps it (raw tagged entries), holds an
// iPAddress ([7]) entry equal to `ip`.
bool subjectAltNamesHoldIp(const mbedtls_x509_sequence* names, const IpAddressBytes& ip);

} // namespace pooled
