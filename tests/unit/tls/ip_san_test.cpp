// Specification of iPAddress SAN matching for origins
// addressed by IP (mbedTLS 2.28 checks DNS names only).
#include "tls/ip_san.h"
#include "tls/tls_session.h"

#include <catch2/catch.hpp>
#include <mbedtls/asn1.h>
#include <mbedtls/x509.h>
#include <mbedtls/x509_crt.h>

#include <string>
#include <vector>

using namespace pooled;

namespace {

// Self-signed, CN "127.0.0.9", SANs DNS:localhost, IP:127.0.0.1, IP:::1 and
// URI:https://127.0.0.2/ (only parsed here, never verified, so its dates do not matter).
constexpr char kCertificatePem[] = R"(-----BEGIN CERTIFICATE-----
MIIBWzCCAQGgAwIBAgIBATAKBggqhkjOPQQDAjAUMRIwEAYDVQQDDAkxMjcuMC4w
LjkwHhcNMjYwMTAxMDAwMDAwWhcNMjYwMTAyMDAwMDAwWjAUMRIwEAYDVQQDDAkx
MjcuMC4wLjkwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAATnV/fM6uycTsknUe6S
8jnMfSTxpji645xe8ekarAk0Rr++kSqS+xJf/rnK8sD8WZhzstRBvpfqXmzJh46H
+7reo0QwQjBABgNVHREEOTA3gglsb2NhbGhvc3SHBH8AAAGHEAAAAAAAAAAAAAAA
AAAAAAGGEmh0dHBzOi8vMTI3LjAuMC4yLzAKBggqhkjOPQQDAgNIADBFAiBBrP6C
n7zVEb2IU4gq4s7uylf36Kq2d6JDVYQaheimXAIhAPdYsDen+AuI5JNhB8BbQ96t
58qeNBv45lUc7Ro84D/C
-----END CERTIFICATE-----
)";

// A SAN list as mbedTLS keeps it: one node per raw tagged GeneralName.
struct SanList {
    std::vector<std::vector<unsigned char>> values;
    std::vector<mbedtls_x509_sequence> nodes;

    SanList(std::initializer_list<std::pair<int, std::vector<unsigned char>>> entries) {
        for (const auto& e : entries)
            values.push_back(e.second);
        nodes.resize(values.size());
        size_t i = 0;
        for (const auto& e : entries) {
            nodes[i].buf.tag = e.first;
            nodes[i].buf.p = values[i].data();
            nodes[i].buf.len = values[i].size();
            nodes[i].next = i + 1 < values.size() ? &nodes[i + 1] : nullptr;
            ++i;
        }
    }
    const mbedtls_x509_sequence* head() const { return nodes.empty() ? nullptr : &nodes[0]; }
};

constexpr int kDns = MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2;
constexpr int kIp = MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7;

IpAddressBytes ip(const char* text) {
    auto parsed = parseIpLiteral(text);
    REQUIRE(parsed);
    return *parsed;
}

std::vector<unsigned char> bytesOf(const std::string& s) {
    return {s.begin(), s.end()};
}

} // namespace

TEST_CASE("an iPAddress SAN matches its address byte for byte and nothing else", "[tls]") {
    SanList sans{{kDns, bytesOf("localhost")},
                 {kIp, {10, 0, 0, 1}},
                 {kIp, {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}}};
    CHECK(subjectAltNamesHoldIp(sans.head(), ip("10.0.0.1")));
    CHECK(subjectAltNamesHoldIp(sans.head(), ip("2001:db8::1")));
    CHECK_FALSE(subjectAltNamesHoldIp(sans.head(), ip("10.0.0.2")));
    CHECK_FALSE(subjectAltNamesHoldIp(sans.head(), ip("2001:db8::2")));
    // The IPv4-mapped form of a listed IPv4 address is another identity.
    CHECK_FALSE(subjectAltNamesHoldIp(sans.head(), ip("::ffff:10.0.0.1")));
    CHECK_FALSE(subjectAltNamesHoldIp(nullptr, ip("10.0.0.1")));
}

TEST_CASE("a DNS SAN spelling the address never matches it", "[tls]") {
    SanList sans{{kDns, bytesOf("127.0.0.1")}, {kDns, {127, 0, 0, 1}}};
    CHECK_FALSE(subjectAltNamesHoldIp(sans.head(), ip("127.0.0.1")));
}

TEST_CASE("mbedTLS keeps a parsed certificate's iPAddress SANs for the check", "[tls]") {
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    int rc = mbedtls_x509_crt_parse(&crt, reinterpret_cast<const unsigned char*>(kCertificatePem),
                                    sizeof kCertificatePem);
    REQUIRE(rc == 0);
    CHECK(subjectAltNamesHoldIp(&crt.subject_alt_names, ip("127.0.0.1")));
    CHECK(subjectAltNamesHoldIp(&crt.subject_alt_names, ip("::1")));
    CHECK_FALSE(subjectAltNamesHoldIp(&crt.subject_alt_names, ip("127.0.0.2"))); // only in a URI
    CHECK_FALSE(subjectAltNamesHoldIp(&crt.subject_alt_names, ip("127.0.0.9"))); // only the CN
    mbedtls_x509_crt_free(&crt);
}

TEST_CASE("an address without a matching IP SAN reads as such, not as a host name", "[tls]") {
    CHECK(describeVerifyFailure(MBEDTLS_X509_BADCERT_CN_MISMATCH, "127.0.0.5", true) ==
          "certificate has no IP SAN matching 127.0.0.5");
    CHECK(describeVerifyFailure(MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_CN_MISMATCH,
                                "::1", true) ==
          "certificate expired, certificate has no IP SAN matching ::1");
    CHECK(describeVerifyFailure(MBEDTLS_X509_BADCERT_NOT_TRUSTED, "127.0.0.5", true) ==
          "unknown CA for 127.0.0.5");
    CHECK(describeVerifyFailure(MBEDTLS_X509_BADCERT_CN_MISMATCH, "api.local", false) ==
          "host name mismatch for api.local");
}
