// PoolManager: see pool_manager.h.
#include "pool/pool_manager.h"

#include "core/worker.h"
#include "pool/upstream_connection.h"

namespace pooled {

PoolManager::PoolManager(Worker& worker) : worker_(worker) {}

PoolManager::~PoolManager() = default;

HostPool& PoolManager::poolFor(const PoolKey& key) {
    auto it = pools_.find(key);
    if (it == pools_.end())
        it = pools_.emplace(key, std::make_unique<HostPool>(*this, worker_, key)).first;
    return *it->second;
}

Checkout PoolManager::checkout(const PoolKey& key, PoolWaiter& waiter) {
    return poolFor(key).checkout(waiter);
}

void PoolManager::cancel(PoolWaiter& waiter) {
    if (HostPool* pool = waiter.queuedIn())
        pool->cancel(waiter);
}

void PoolManager::release(UpstreamConnection& connection, bool request_done) {
    poolFor(connection.key()).release(connection, request_done);
}

void PoolManager::discard(UpstreamConnection& connection, std::string_view cause) {
    poolFor(connection.key()).discard(connection, cause);
}

std::unique_ptr<UpstreamConnection> PoolManager::detach(UpstreamConnection& connection) {
    return poolFor(connection.key()).detach(connection);
}

bool PoolManager::hasStarvedPools() const {
    for (auto* pool : starved_) {
        auto s = pool->stats();
        if (s.pending > s.connecting)
            return true;
    }
    return false;
}

int64_t PoolManager::learnedIdleMs(const PoolKey& key) const {
    auto it = learned_idle_ms_.find(key);
    return it == learned_idle_ms_.end() ? -1 : it->second;
}

bool PoolManager::reserveSlot(HostPool& requester) {
    if (total_ < worker_.config().pool.max_connections_total) {
        ++total_;
        return true;
    }
    // At the global limit an idle connection elsewhere is worth less than a waiting request.
    for (auto& [key, pool] : pools_) {
        if (pool.get() != &requester && pool->closeOldestIdle()) {
            ++total_;
            return true;
        }
    }
    starved_.insert(&requester);
    return false;
}

void PoolManager::slotFreed() {
    if (total_ > 0)
        --total_;
    if (starved_.empty())
        return;
    auto starved = std::move(starved_);
    starved_.clear();
    for (auto* pool : starved)
        pool->openForWaiters();
}

void PoolManager::scheduleSweep() {
    if (sweep_scheduled_)
        return;
    sweep_scheduled_ = true;
    std::weak_ptr<bool> alive = alive_;
    worker_.defer([this, alive] {
        if (alive.expired())
            return;
        sweep_scheduled_ = false;
        for (auto it = pools_.begin(); it != pools_.end();) {
            if (it->second->empty() && !starved_.count(it->second.get())) {
                if (int64_t learned = it->second->learnedIdleMs(); learned >= 0) {
                    if (learned_idle_ms_.size() >= 4096)
                        learned_idle_ms_.clear(); // bounded: relearning is cheap
                    learned_idle_ms_[it->first] = learned;
                }
                it = pools_.erase(it);
            }
            else
                ++it;
        }
    });
}

void PoolManager::closeIdle() {
    for (auto& [key, pool] : pools_)
        pool->closeIdle();
}

void PoolManager::failAllWaiters() {
    for (auto& [key, pool] : pools_)
        pool->failWaiters({503, "connection_limit_reached", "shutting down"});
}

} // namespace pooled
