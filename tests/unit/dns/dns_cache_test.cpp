// Specifies DnsCache: entries live until their expiry time, the cache stays within its
// capacity, and eviction takes expired entries before the oldest live one.
#include "dns/dns_cache.h"

#include <catch2/catch.hpp>

namespace {

using pooled::DnsCache;
using pooled::DnsCacheEntry;

DnsCacheEntry entryExpiringAt(uint64_t expires_at, bool ok = true) {
    DnsCacheEntry entry;
    entry.ok = ok;
    entry.error = ok ? "" : "NXDOMAIN";
    entry.expires_at = expires_at;
    return entry;
}

} // namespace

TEST_CASE("a cached entry is found until its expiry time, then dropped", "[dns]") {
    DnsCache cache;
    cache.store("example.test", entryExpiringAt(100), 0);
    REQUIRE(cache.find("example.test", 99) != nullptr);
    REQUIRE(cache.find("example.test", 100) == nullptr);
    REQUIRE(cache.size() == 0);
}

TEST_CASE("failures are cached like answers", "[dns]") {
    DnsCache cache;
    cache.store("gone.test", entryExpiringAt(50, false), 0);
    const DnsCacheEntry* entry = cache.find("gone.test", 10);
    REQUIRE(entry != nullptr);
    CHECK_FALSE(entry->ok);
    CHECK(entry->error == "NXDOMAIN");
}

TEST_CASE("an entry that is already stale is not stored", "[dns]") {
    DnsCache cache;
    cache.store("zero-ttl.test", entryExpiringAt(10), 10);
    CHECK(cache.size() == 0);
}

TEST_CASE("storing a name again replaces its entry", "[dns]") {
    DnsCache cache;
    cache.store("a.test", entryExpiringAt(100), 0);
    cache.store("a.test", entryExpiringAt(500), 0);
    REQUIRE(cache.size() == 1);
    CHECK(cache.find("a.test", 200) != nullptr);
}

TEST_CASE("a full cache evicts expired entries before live ones", "[dns]") {
    DnsCache cache(3);
    cache.store("old-but-live.test", entryExpiringAt(1000), 0);
    cache.store("expired.test", entryExpiringAt(10), 0);
    cache.store("live.test", entryExpiringAt(1000), 0);
    cache.store("new.test", entryExpiringAt(1000), 20);
    CHECK(cache.size() == 3);
    CHECK(cache.find("old-but-live.test", 20) != nullptr);
    CHECK(cache.find("live.test", 20) != nullptr);
    CHECK(cache.find("new.test", 20) != nullptr);
}

TEST_CASE("a full cache without expired entries evicts the oldest", "[dns]") {
    DnsCache cache(2);
    cache.store("first.test", entryExpiringAt(1000), 0);
    cache.store("second.test", entryExpiringAt(1000), 1);
    cache.store("third.test", entryExpiringAt(1000), 2);
    CHECK(cache.size() == 2);
    CHECK(cache.find("first.test", 3) == nullptr);
    CHECK(cache.find("second.test", 3) != nullptr);
    CHECK(cache.find("third.test", 3) != nullptr);
}
