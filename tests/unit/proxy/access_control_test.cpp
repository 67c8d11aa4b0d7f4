// Specification of the access rules: CIDR parsing and matching, the client allow-list,
// destination rules, and how the config reports mistakes.
#include "config/config_loader.h"
#include "proxy/access_control.h"
#include "../config/config_test_support.h"

#include <catch2/catch.hpp>

#include <arpa/inet.h>

using namespace pooled;
using pooled::test::errorOf;

namespace {

sockaddr_storage addr(const std::string& text) {
    sockaddr_storage s{};
    REQUIRE(ipLiteral(text, s));
    return s;
}

const sockaddr* sa(const sockaddr_storage& s) {
    return reinterpret_cast<const sockaddr*>(&s);
}

Cidr cidr(const std::string& text) {
    std::string error;
    auto block = parseCidr(text, error);
    REQUIRE(block);
    return *block;
}

std::string cidrError(const std::string& text) {
    std::string error;
    REQUIRE_FALSE(parseCidr(text, error));
    return error;
}

} // namespace

TEST_CASE("IPv4 blocks match addresses by prefix", "[access]") {
    const Cidr block = cidr("10.0.0.0/8");
    CHECK(cidrContains(block, sa(addr("10.255.1.2"))));
    CHECK_FALSE(cidrContains(block, sa(addr("11.0.0.1"))));
    CHECK(cidrContains(cidr("192.168.1.128/25"), sa(addr("192.168.1.200"))));
    CHECK_FALSE(cidrContains(cidr("192.168.1.128/25"), sa(addr("192.168.1.127"))));
    CHECK(cidrContains(cidr("0.0.0.0/0"), sa(addr("8.8.8.8"))));
    CHECK(cidrContains(cidr("127.0.0.2"), sa(addr("127.0.0.2"))));
    CHECK_FALSE(cidrContains(cidr("127.0.0.2"), sa(addr("127.0.0.1"))));
}

TEST_CASE("IPv6 blocks match, and IPv4-mapped addresses match as IPv4", "[access]") {
    CHECK(cidrContains(cidr("fe80::/10"), sa(addr("fe80::1"))));
    CHECK(cidrContains(cidr("fe80::/10"), sa(addr("febf::1"))));
    CHECK_FALSE(cidrContains(cidr("fe80::/10"), sa(addr("fec0::1"))));
    CHECK(cidrContains(cidr("169.254.0.0/16"), sa(addr("::ffff:169.254.169.254"))));
    CHECK_FALSE(cidrContains(cidr("10.0.0.0/8"), sa(addr("::1"))));
    CHECK_FALSE(cidrContains(cidr("::/0"), sa(addr("10.0.0.1"))));
}

TEST_CASE("malformed blocks are rejected with a reason", "[access]") {
    CHECK_THAT(cidrError("10.0.0.0/33"), Catch::Contains("bad prefix length (0-32)"));
    CHECK_THAT(cidrError("10.0.0.0/"), Catch::Contains("bad prefix length"));
    CHECK_THAT(cidrError("10.0.0.0/8x"), Catch::Contains("bad prefix length"));
    CHECK_THAT(cidrError("fe80::/129"), Catch::Contains("(0-128)"));
    CHECK_THAT(cidrError("10.0.0.1/8"), Catch::Contains("host bits set"));
    CHECK_THAT(cidrError("example.com/8"), Catch::Contains("not an address block"));
}

TEST_CASE("without allow_clients only loopback clients are allowed", "[access]") {
    AccessConfig access;
    CHECK(clientAllowed(access, sa(addr("127.0.0.1"))));
    CHECK(clientAllowed(access, sa(addr("127.0.0.2"))));
    CHECK(clientAllowed(access, sa(addr("::1"))));
    CHECK(clientAllowed(access, sa(addr("::ffff:127.0.0.1"))));
    CHECK_FALSE(clientAllowed(access, sa(addr("10.1.1.1"))));
    access.allow_clients = {cidr("127.0.0.1/32")};
    CHECK(clientAllowed(access, sa(addr("127.0.0.1"))));
    CHECK_FALSE(clientAllowed(access, sa(addr("127.0.0.2"))));
}

TEST_CASE("link-local (cloud metadata) destinations are denied by default", "[access]") {
    AccessConfig access;
    CHECK_FALSE(destinationAllowed(access, sa(addr("169.254.169.254"))));
    CHECK_FALSE(destinationAllowed(access, sa(addr("fe80::a9fe:a9fe"))));
    CHECK(destinationAllowed(access, sa(addr("93.184.216.34"))));
    access.allow_destinations = {cidr("169.254.1.0/24")};
    CHECK(destinationAllowed(access, sa(addr("169.254.1.7"))));
    CHECK_FALSE(destinationAllowed(access, sa(addr("169.254.169.254"))));
}

TEST_CASE("destination names are denied by pattern before any lookup, with exceptions", "[access]") {
    AccessConfig access;
    access.deny_hosts = {"*.internal", "metadata.google.internal", "blocked.example"};
    access.allow_hosts = {"api.internal"};
    CHECK(destinationNameDenied(access, "db.internal", 80) == "host db.internal is not allowed");
    CHECK_FALSE(destinationNameDenied(access, "a.b.INTERNAL", 80).empty()); // any depth, any case
    CHECK_FALSE(destinationNameDenied(access, "blocked.example.", 80).empty()); // trailing dot
    CHECK(destinationNameDenied(access, "api.internal", 80).empty());        // the exception
    CHECK(destinationNameDenied(access, "internal", 80).empty());     // *. means subdomains only
    CHECK(destinationNameDenied(access, "notblocked.example", 80).empty());
}

TEST_CASE("allow_ports limits destination ports when set", "[access]") {
    AccessConfig access;
    CHECK(destinationNameDenied(access, "a.example", 22).empty()); // unset: any port
    access.allow_ports = {80, 443};
    CHECK(destinationNameDenied(access, "a.example", 443).empty());
    CHECK(destinationNameDenied(access, "a.example", 22) == "port 22 is not allowed");
}

TEST_CASE("host patterns are checked when the config is read", "[access][config]") {
    const Config c = loadConfigString(
        "access:\n  deny_hosts: [\"*.internal\", a.example]\n  allow_ports: [80, 443]\n", "t");
    CHECK(c.access.deny_hosts == std::vector<std::string>{"*.internal", "a.example"});
    CHECK(c.access.allow_ports == std::vector<uint16_t>{80, 443});
    for (const char* bad : {"\"*\"", "\"a.*.example\"", "\"bad host\"", "\".example\""}) {
        const ConfigError e = errorOf(std::string("access:\n  deny_hosts: [ok.example, ") + bad + "]\n");
        CHECK(e.key() == "access.deny_hosts[1]");
        CHECK_THAT(e.message(), Catch::Contains("is not a host name"));
    }
    CHECK(errorOf("access:\n  allow_ports: [0]\n").key() == "access.allow_ports[0]");
}

TEST_CASE("access rules are read from the config", "[access][config]") {
    const Config c = loadConfigString(R"(
access:
  allow_clients: [10.0.0.0/8, "fd00::/8"]
  deny_destinations: [127.0.0.2/32]
  allow_destinations: []
listeners:
  - address: 0.0.0.0:3128
)",
                                      "test.yaml");
    REQUIRE(c.access.allow_clients.size() == 2);
    CHECK(c.access.allow_clients[1].family == AF_INET6);
    REQUIRE(c.access.deny_destinations.size() == 1); // replaces the default
    CHECK(c.access.deny_destinations[0].text == "127.0.0.2/32");
    CHECK(defaultConfig().access.deny_destinations == defaultDeniedDestinations());
}

TEST_CASE("a non-loopback listener without allow_clients is refused, naming it", "[access][config]") {
    const ConfigError e = errorOf("listeners:\n  - address: 0.0.0.0:3128\n");
    CHECK(e.key() == "listeners[0].address");
    CHECK(e.line() == 2);
    CHECK(e.column() == 14);
    CHECK_THAT(e.message(), Catch::Contains("0.0.0.0:3128 is not on loopback"));
    CHECK_THAT(e.message(), Catch::Contains("access.allow_clients"));
    CHECK_NOTHROW(loadConfigString("listeners:\n  - address: \"[::1]:3128\"\n", "t"));
    CHECK_NOTHROW(loadConfigString("listeners:\n  - address: 127.0.0.5:3128\n", "t"));
}

TEST_CASE("a bad address block names the key, line and column", "[access][config]") {
    const ConfigError e = errorOf("access:\n  deny_destinations: [10.0.0.0/8, 10.1.0.1/16]\n");
    CHECK(e.key() == "access.deny_destinations[1]");
    CHECK(e.line() == 2);
    CHECK_THAT(e.message(), Catch::Contains("host bits set"));
}
