// Specification of IP literal detection: which hosts are addresses.
#include "net/ip_literal.h"

#include <catch2/catch.hpp>

#include <vector>

using namespace pooled;

TEST_CASE("IPv4 dotted quads and IPv6 literals are addresses; everything else a name", "[net]") {
    auto v4 = parseIpLiteral("127.0.0.5");
    REQUIRE(v4);
    CHECK(v4->size == 4);
    CHECK(std::vector<unsigned char>(v4->bytes.begin(), v4->bytes.begin() + 4) ==
          std::vector<unsigned char>{127, 0, 0, 5});
    auto v6 = parseIpLiteral("::1");
    REQUIRE(v6);
    CHECK(v6->size == 16);
    CHECK(v6->bytes[15] == 1);
    CHECK(parseIpLiteral("[2001:db8::1]")->size == 16);
    CHECK(parseIpLiteral("::ffff:127.0.0.1")->size == 16);
    for (const char* name : {"localhost", "api.example.com", "127.0.0.1.nip.io", "127.1",
                             "0x7f.0.0.1", "127.0.0.256", "", "[]", "[127.0.0.1", "1.2.3.4 ",
                             "fe80::1%eth0"})
        CHECK_FALSE(parseIpLiteral(name));
}
