// DnsCache: a map of entries plus two indexes (insertion age, expiry time) so that both
// eviction orders cost O(log n) instead of a scan of the whole cache on every insert.
#include "dns/dns_cache.h"

#include <utility>

namespace pooled {

DnsCache::DnsCache(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

const DnsCacheEntry* DnsCache::find(const std::string& name, uint64_t now) {
    auto it = entries_.find(name);
    if (it == entries_.end()) {
        return nullptr;
    }
    if (it->second.entry.expires_at <= now) {
        erase(it);
        return nullptr;
    }
    return &it->second.entry;
}

void DnsCache::store(const std::string& name, DnsCacheEntry entry, uint64_t now) {
    if (auto it = entries_.find(name); it != entries_.end()) {
        erase(it);
    }
    if (entry.expires_at <= now) {
        return;
    }
    makeRoom(now);
    by_age_.push_back(name);
    auto expiry = by_expiry_.emplace(entry.expires_at, name);
    entries_.emplace(name, Slot{std::move(entry), std::prev(by_age_.end()), expiry});
}

void DnsCache::clear() {
    entries_.clear();
    by_age_.clear();
    by_expiry_.clear();
}

void DnsCache::erase(Entries::iterator it) {
    by_age_.erase(it->second.age);
    by_expiry_.erase(it->second.expiry);
    entries_.erase(it);
}

void DnsCache::makeRoom(uint64_t now) {
    while (entries_.size() >= capacity_ && !by_expiry_.empty() &&
           by_expiry_.begin()->first <= now) {
        erase(entries_.find(by_expiry_.begin()->second));
    }
    while (entries_.size() >= capacity_ && !by_age_.empty()) {
        erase(entries_.find(by_age_.front()));
    }
}

} // namespace pooled
