// TTL cache of DNS outcomes (answers and failures) for the Resolver. Bounded: when full it
// evicts expired entries first, then the oldest. Times are milliseconds on the loop clock
// (uv_now), passed in by the caller so the cache itself needs no loop.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

namespace pooled {

struct DnsCacheEntry {
    bool ok = false;
    std::string error;                       // set when !ok
    std::vector<sockaddr_storage> addresses; // port 0; each request fills in its own port
    uint64_t expires_at = 0;                 // loop time (ms) from which the entry is stale
};

class DnsCache {
public:
    static constexpr size_t kDefaultCapacity = 4096;

    explicit DnsCache(size_t capacity = kDefaultCapacity);

    // The live entry for name, or nullptr. A stale entry is dropped on the way. The pointer
    // is valid until the next store() or clear().
    const DnsCacheEntry* find(const std::string& name, uint64_t now);
    // Inserts or replaces the entry for name. Entries already stale at `now` are not kept.
    void store(const std::string& name, DnsCacheEntry entry, uint64_t now);
    void clear();

    size_t size() const { return entries_.size(); }
    size_t capacity() const { return capacity_; }

private:
    using AgeList = std::list<std::string>;
    using ExpiryIndex = std::multimap<uint64_t, std::string>;
    struct Slot {
        DnsCacheEntry entry;
        AgeList::iterator age;
        ExpiryIndex::iterator expiry;
    };
    using Entries = std::unordered_map<std::string, Slot>;

    void erase(Entries::iterator it);
    void makeRoom(uint64_t now);

    size_t capacity_;
    Entries entries_;
    AgeList by_age_;        // oldest insertion first: the victim when nothing has expired
    ExpiryIndex by_expiry_; // soonest expiry first: stale entries go before live ones
};

} // namespace pooled
