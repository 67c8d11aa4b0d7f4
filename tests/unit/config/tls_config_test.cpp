// Specification of the TLS keys of the configuration: tls, tls_origination, routes[].tls.
#include "config/config_loader.h"
#include "config_test_support.h"

#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <string>

using namespace pooled;
using pooled::test::errorOf;
using pooled::test::load;

namespace {

// A readable file for the keys that must name one (its content does not matter here).
std::string someFile() {
    std::string path = "/tmp/pooled-tls-config-test.pem";
    std::ofstream(path) << "placeholder\n";
    return path;
}

} // namespace

TEST_CASE("TLS defaults: the system CA bundle, TLS 1.2, no origination rules", "[config][tls]") {
    const Config c = load("");
    CHECK(c.tls.ca_file == "/etc/ssl/certs/ca-certificates.crt");
    CHECK(c.tls.min_version == "1.2");
    CHECK(c.tls_origination.empty());
}

TEST_CASE("a route's tls settings are read", "[config][tls]") {
    const std::string f = someFile();
    const Config c = load("routes:\n"
                          "  - name: api\n"
                          "    upstream: https://api.internal\n"
                          "    tls: {ca_file: " + f + ", client_cert: " + f + ", client_key: " + f +
                          ", server_name: API.Internal, insecure_skip_verify: true, false_start: false}\n");
    const auto& t = c.routes[0].tls;
    CHECK(t.ca_file == f);
    CHECK(t.client_cert == f);
    CHECK(t.client_key == f);
    CHECK(t.server_name == "api.internal");
    CHECK(t.insecure_skip_verify);
    CHECK_FALSE(t.false_start);
    CHECK(load("routes:\n  - name: api\n    upstream: https://api.internal\n")
              .routes[0].tls.false_start); // on unless turned off
}

TEST_CASE("tls_origination rules: hosts, a port map that replaces {80: 443}", "[config][tls]") {
    const Config c = load("tls_origination:\n"
                          "  - hosts: [api.example.com, '*.svc.example']\n"
                          "  - hosts: [legacy.local]\n"
                          "    ports: {8080: 8443, 80: 443}\n");
    REQUIRE(c.tls_origination.size() == 2);
    CHECK(c.tls_origination[0].hosts == std::vector<std::string>{"api.example.com", "*.svc.example"});
    CHECK(c.tls_origination[0].ports == std::vector<std::pair<uint16_t, uint16_t>>{{80, 443}});
    CHECK(c.tls_origination[1].ports ==
          std::vector<std::pair<uint16_t, uint16_t>>{{8080, 8443}, {80, 443}});
}

TEST_CASE("TLS mistakes are errors naming the key, line and column", "[config][tls]") {
    SECTION("an unknown key inside a route's tls") {
        const ConfigError e =
            errorOf("routes:\n  - name: a\n    upstream: https://a\n    tls: {ca_fle: x}\n");
        CHECK(e.key() == "routes[0].tls.ca_fle");
        CHECK(e.line() == 4);
        CHECK(std::string(e.what()).find("did you mean 'ca_file'") != std::string::npos);
    }
    SECTION("an unreadable ca_file") {
        const ConfigError e = errorOf(
            "routes:\n  - name: a\n    upstream: https://a\n    tls: {ca_file: /nonexistent/ca.pem}\n");
        CHECK(e.key() == "routes[0].tls.ca_file");
        CHECK(std::string(e.what()).find("/nonexistent/ca.pem") != std::string::npos);
    }
    SECTION("a client certificate without its key") {
        const ConfigError e = errorOf("routes:\n  - name: a\n    upstream: https://a\n"
                                      "    tls: {client_cert: " + someFile() + "}\n");
        CHECK(e.key() == "routes[0].tls.client_key");
    }
    SECTION("tls settings on a plain http upstream") {
        const ConfigError e = errorOf("routes:\n  - name: a\n    upstream: http://a\n"
                                      "    tls: {insecure_skip_verify: true}\n");
        CHECK(e.key() == "routes[0].tls");
    }
    SECTION("a TLS version mbedTLS 2.28 cannot speak") {
        CHECK(errorOf("tls: {min_version: '1.3'}").key() == "tls.min_version");
    }
    SECTION("an unknown top-level tls key") {
        const ConfigError e = errorOf("tls:\n  cafile: x\n");
        CHECK(e.key() == "tls.cafile");
        CHECK(e.line() == 2);
        CHECK(e.column() == 3);
    }
    SECTION("a rule without hosts") {
        CHECK(errorOf("tls_origination:\n  - ports: {80: 443}\n").key() == "tls_origination[0].hosts");
    }
    SECTION("a port out of range") {
        CHECK(errorOf("tls_origination:\n  - hosts: [a]\n    ports: {80: 70000}\n").key() ==
              "tls_origination[0].ports.80");
    }
    SECTION("a wildcard server_name") {
        CHECK(errorOf("routes:\n  - name: a\n    upstream: https://a\n"
                      "    tls: {server_name: '*.a'}\n")
                  .key() == "routes[0].tls.server_name");
    }
}
