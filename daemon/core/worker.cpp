// Worker: see worker.h.
#include "core/worker.h"

#include "dns/resolver.h"
#include "net/listener.h"
#include "observe/access_log.h"
#include "observe/admin_server.h"
#include "pool/pool_manager.h"
#include "proxy/client_session.h"
#include "tls/tls_context.h"

#include <spdlog/spdlog.h>

namespace pooled {

Worker::Worker(uv_loop_t* loop, std::shared_ptr<const Config> config)
    : loop_(loop), config_(std::move(config)), write_buffers_(config_->buffers.read_buffer + 64),
      client_timers_(loop, &ClientSession::onDeadline, nullptr), random_(std::random_device{}()),
      read_slab_(config_->buffers.read_buffer) {
    std::string why;
    send_ring_ = std::make_unique<SendRing>(loop_, write_buffers_, config_->buffers.io_uring, why);
    if (send_ring_->enabled())
        spdlog::debug("sends are batched through io_uring");
    else
        spdlog::info("sends go out one write(2) each: io_uring {}", why);
    resolver_ = std::make_unique<Resolver>(loop_, config_->dns);
    access_log_ = std::make_unique<AccessLog>(config_->access_log);
    pools_ = std::make_unique<PoolManager>(*this);
    uv_prepare_init(loop_, &prepare_);
    uv_check_init(loop_, &check_);
    uv_idle_init(loop_, &idle_);
    uv_timer_init(loop_, &drain_timer_);
    prepare_.data = check_.data = idle_.data = drain_timer_.data = this;
    uv_prepare_start(&prepare_, &Worker::onPrepare);
    uv_check_start(&check_, &Worker::onCheck);
    // The loop's bookkeeping handles must not keep it alive on their own.
    uv_unref(reinterpret_cast<uv_handle_t*>(&prepare_));
    uv_unref(reinterpret_cast<uv_handle_t*>(&check_));
}

Worker::~Worker() {
    // Normally empty by now (finishShutdown ends every session).
    while (ClientSession* session = sessions_.front()) {
        sessions_.remove(*session);
        std::unique_ptr<ClientSession> owned(session);
    }
}

TlsContext& Worker::tls() {
    if (!tls_)
        tls_ = std::make_unique<TlsContext>(*config_);
    return *tls_;
}

void Worker::start() {
    tls(); // TLS files are loaded before the first listener accepts
    if (inherited_fds_.size() > config_->listeners.size())
        throw std::runtime_error("socket activation passed " +
                                 std::to_string(inherited_fds_.size()) +
                                 " sockets (LISTEN_FDS) but the config has " +
                                 std::to_string(config_->listeners.size()) +
                                 " listeners: give each socket a listener, in the same order");
    for (size_t i = 0; i < config_->listeners.size(); ++i) {
        const auto& lc = config_->listeners[i];
        auto listener = std::make_unique<Listener>(*this, lc);
        auto* raw = listener.get();
        listeners_.push_back(std::move(listener));
        if (i < inherited_fds_.size())
            raw->setInheritedFd(inherited_fds_[i]);
        raw->start();
        if (lc.route.empty())
            spdlog::info("listening on {}", raw->boundAddress());
        else
            spdlog::info("listening on {} route={}", raw->boundAddress(), lc.route);
    }
    if (config_->admin.enabled) {
        admin_ = std::make_unique<AdminServer>(*this, config_->admin);
        admin_->start();
        spdlog::info("admin listening on {}", admin_->boundAddress());
    }
    started_ = true;
}

void Worker::onPrepare(uv_prepare_t* handle) {
    auto* self = static_cast<Worker*>(handle->data);
    self->tick_++;
    // Last before the loop may sleep: whatever timers and the rest of the turn wrote.
    self->send_ring_->flush(64);
}

void Worker::onCheck(uv_check_t* handle) {
    auto* self = static_cast<Worker*>(handle->data);
    self->runDeferred();
    // What this turn's reads produced goes out together.
    self->send_ring_->flush(16);
    // Last in the turn, after anything deferred logged: the loop may sleep next.
    self->access_log_->endOfTurn();
}

void Worker::runDeferred() {
    if (deferred_.empty())
        return;
    // Run what was deferred before this turn's poll; keep what was added since.
    std::vector<std::pair<uint64_t, std::function<void()>>> ready;
    std::vector<std::pair<uint64_t, std::function<void()>>> later;
    for (auto& item : deferred_)
        (item.first < tick_ ? ready : later).push_back(std::move(item));
    deferred_ = std::move(later);
    for (auto& item : ready)
        item.second();
    if (deferred_.empty())
        uv_idle_stop(&idle_);
}

void Worker::defer(std::function<void()> fn) {
    if (finished_)
        return;
    deferred_.emplace_back(tick_, std::move(fn));
    // An active idle handle makes the next poll non-blocking.
    uv_idle_start(&idle_, &Worker::onIdle);
}

void Worker::retire(std::unique_ptr<Closable> object) {
    if (!object)
        return;
    Closable* raw = object.get();
    closing_.emplace(raw, std::move(object));
    raw->close([this, raw] { closing_.erase(raw); });
}

void Worker::adoptSession(std::unique_ptr<ClientSession> session) {
    counters_.client_connections++;
    counters_.client_connections_total++;
    sessions_.pushFront(*session.release());
}

void Worker::endSession(ClientSession* session) {
    if (!sessions_.contains(*session))
        return; // already ended
    sessions_.remove(*session);
    std::unique_ptr<ClientSession> owned(session);
    counters_.client_connections--;
    retire(std::move(owned));
    if (draining_ && sessions_.empty())
        finishShutdown();
}

std::unique_ptr<Exchange> Worker::takeExchange() {
    if (spare_exchanges_.empty())
        return nullptr;
    auto exchange = std::move(spare_exchanges_.back());
    spare_exchanges_.pop_back();
    return exchange;
}

void Worker::keepExchange(std::unique_ptr<Exchange> exchange) {
    // Enough to cover the turnover of a busy loop; idle connections hold none, so memory
    // per idle connection stays that of a ClientSession.
    constexpr size_t kMaxSpareExchanges = 32;
    constexpr size_t kMaxSpareBuffers = 16 * 1024;
    if (spare_exchanges_.size() < kMaxSpareExchanges &&
        exchange->bufferCapacity() <= kMaxSpareBuffers)
        spare_exchanges_.push_back(std::move(exchange));
}

// A copy to walk while sessions end (and leave the list) one by one.
std::vector<ClientSession*> Worker::sessionList() const {
    std::vector<ClientSession*> list;
    list.reserve(sessions_.size());
    for (ClientSession* s = sessions_.front(); s; s = IntrusiveList<ClientSession>::next(*s))
        list.push_back(s);
    return list;
}

void Worker::shutdown() {
    if (draining_)
        return;
    draining_ = true;
    spdlog::info("draining: {} client connections, up to {} ms", sessions_.size(),
                 config_->timeouts.drain.count());
    for (auto& listener : listeners_)
        retire(std::move(listener));
    listeners_.clear();
    // The admin endpoint stays up while draining: /readyz answers 503 meanwhile.
    pools_->closeIdle();
    // Idle sessions close now; busy ones close when their request ends.
    for (auto* s : sessionList())
        s->drain();
    if (sessions_.empty()) {
        finishShutdown();
        return;
    }
    uv_timer_start(&drain_timer_, &Worker::onDrainTimer,
                   static_cast<uint64_t>(config_->timeouts.drain.count()), 0);
}

void Worker::onDrainTimer(uv_timer_t* handle) {
    auto* self = static_cast<Worker*>(handle->data);
    spdlog::warn("drain timeout: closing {} client connections", self->sessions_.size());
    for (auto* s : self->sessionList())
        self->endSession(s);
    self->finishShutdown();
}

void Worker::finishShutdown() {
    if (finished_)
        return;
    finished_ = true;
    pools_->failAllWaiters();
    pools_->closeIdle();
    pools_.reset(); // retires every remaining upstream connection
    deferred_.clear();
    retire(std::move(admin_));
    access_log_->flush();
    closer_.add(reinterpret_cast<uv_handle_t*>(&prepare_));
    closer_.add(reinterpret_cast<uv_handle_t*>(&check_));
    closer_.add(reinterpret_cast<uv_handle_t*>(&idle_));
    closer_.add(reinterpret_cast<uv_handle_t*>(&drain_timer_));
    client_timers_.closeHandles(closer_);
    send_ring_->closeHandles(closer_);
    closer_.arm([] {});
    resolver_->close([] {});
}

} // namespace pooled
