// Specification of TLS profiles, origination rules, verification messages and the
// start-up checks of the per-worker TLS context.
#include "config/config_loader.h"
#include "pool/pool_key.h"
#include "tls/tls_context.h"
#include "tls/tls_profile.h"
#include "tls/tls_session.h"

#include <catch2/catch.hpp>
#include <mbedtls/x509.h>

#include <fstream>
#include <stdexcept>
#include <string>

using namespace pooled;

TEST_CASE("the default TLS settings have the empty profile id", "[tls]") {
    CHECK(tlsProfileId(UpstreamTlsConfig{}).empty());
}

TEST_CASE("different trust or client certificates give different profile ids", "[tls]") {
    UpstreamTlsConfig a;
    a.ca_file = "/a.pem";
    UpstreamTlsConfig b = a;
    b.client_cert = "/c.pem";
    b.client_key = "/k.pem";
    UpstreamTlsConfig c = a;
    c.insecure_skip_verify = true;
    UpstreamTlsConfig d = a;
    d.server_name = "x.internal";
    UpstreamTlsConfig e = a;
    e.false_start = false;
    CHECK(tlsProfileId(a) == "ca=/a.pem");
    CHECK(tlsProfileId(a) != tlsProfileId(b));
    CHECK(tlsProfileId(a) != tlsProfileId(c));
    CHECK(tlsProfileId(a) != tlsProfileId(d));
    CHECK(tlsProfileId(a) != tlsProfileId(e));
    CHECK(tlsProfileId(a) == tlsProfileId(UpstreamTlsConfig(a)));
}

TEST_CASE("pool keys differing only in TLS profile are different pools", "[tls][pool]") {
    PoolKey plain{"https", "api", 443};
    PoolKey mtls{"https", "api", 443, "cert=/c.pem key=/k.pem"};
    CHECK_FALSE(plain == mtls);
    CHECK(PoolKeyHash{}(plain) != PoolKeyHash{}(mtls));
    CHECK(plain.toString() == "https://api:443");
    CHECK(mtls.toString() == "https://api:443 [cert=/c.pem key=/k.pem]");
}

TEST_CASE("tls_origination: the first matching rule, ports mapped or kept", "[tls]") {
    Config config = loadConfigString("tls_origination:\n"
                                     "  - hosts: ['*.example.com']\n"
                                     "  - hosts: [legacy.local]\n"
                                     "    ports: {8080: 8443}\n",
                                     "test.yaml");
    auto a = findTlsOrigination(config, "API.example.com", 80);
    REQUIRE(a);
    CHECK(a->port == 443);
    CHECK(a->rule == &config.tls_origination[0]);
    CHECK(findTlsOrigination(config, "api.example.com", 8000)->port == 8000);
    CHECK(findTlsOrigination(config, "legacy.local", 8080)->port == 8443);
    CHECK(findTlsOrigination(config, "legacy.local", 80)->port == 80); // the map was replaced
    CHECK_FALSE(findTlsOrigination(config, "example.com", 80));
    CHECK_FALSE(findTlsOrigination(config, "other.local", 80));
}

TEST_CASE("verification failures read as the reason a person can act on", "[tls]") {
    CHECK(describeVerifyFlags(MBEDTLS_X509_BADCERT_EXPIRED) == "certificate expired");
    CHECK(describeVerifyFlags(MBEDTLS_X509_BADCERT_NOT_TRUSTED) == "unknown CA");
    CHECK(describeVerifyFlags(MBEDTLS_X509_BADCERT_CN_MISMATCH) == "host name mismatch");
    CHECK(describeVerifyFlags(MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_CN_MISMATCH) ==
          "certificate expired, host name mismatch");
    CHECK_FALSE(describeVerifyFlags(MBEDTLS_X509_BADCRL_EXPIRED).empty());
}

namespace {

std::string writeFile(const std::string& name, const std::string& text) {
    std::string path = "/tmp/pooled-tls-unit-" + name;
    std::ofstream(path) << text;
    return path;
}

std::string startupError(const Config& config) {
    try {
        TlsContext context(config);
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    return "";
}

} // namespace

TEST_CASE("the TLS context builds a profile for the defaults and every https route", "[tls]") {
    Config config;
    config.tls.ca_file = "/etc/ssl/certs/ca-certificates.crt";
    RouteConfig route;
    route.name = "r";
    route.upstream = {"https", "api", 443};
    route.tls.insecure_skip_verify = true;
    config.routes.push_back(route);
    TlsContext context(config);
    CHECK(context.profile("") != nullptr);
    CHECK(context.profile(tlsProfileId(route.tls)) != nullptr);
    CHECK(context.profile("ca=/never-configured.pem") == nullptr);
    CHECK(context.sessionCount() == 0);
}

TEST_CASE("bad TLS files stop the start naming their config key", "[tls]") {
    const std::string garbage = writeFile("garbage.pem", "not a certificate\n");
    Config config;
    RouteConfig route;
    route.name = "r";
    route.upstream = {"https", "api", 443};
    SECTION("a ca_file with no certificate") {
        route.tls.ca_file = garbage;
        config.routes.push_back(route);
        CHECK(startupError(config).find("routes[0].tls.ca_file") != std::string::npos);
    }
    SECTION("a client certificate that does not parse") {
        route.tls.client_cert = garbage;
        route.tls.client_key = garbage;
        config.routes.push_back(route);
        CHECK(startupError(config).find("routes[0].tls.client_cert") != std::string::npos);
    }
    SECTION("a tls_origination rule's ca_file") {
        TlsOriginationRule rule;
        rule.hosts = {"a"};
        rule.tls.ca_file = garbage;
        config.tls_origination.push_back(rule);
        CHECK(startupError(config).find("tls_origination[0].tls.ca_file") != std::string::npos);
    }
    SECTION("an explicit global ca_file that is missing") {
        config.tls.ca_file = "/nonexistent/bundle.pem";
        CHECK(startupError(config).find("tls.ca_file") != std::string::npos);
    }
}
