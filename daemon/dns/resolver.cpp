// Resolver: c-ares driven by libuv the way Node's cares_wrap does it (one uv_poll_t per c-ares
// socket, one uv_timer_t for c-ares timeouts), a TTL cache with query coalescing in front of
// it, and a uv_idle_t queue through which every callback is delivered on a later loop turn.
#include "dns/resolver.h"

#include "dns/dns_cache.h"

#include <ares.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <unordered_map>
#include <utility>

namespace pooled {

namespace {

// ares_library_init/cleanup are reference counted; one pair per Resolver.
class AresLibrary {
public:
    AresLibrary() {
        if (int rc = ares_library_init(ARES_LIB_INIT_ALL); rc != ARES_SUCCESS) {
            throw std::runtime_error(std::string("c-ares library init: ") + ares_strerror(rc));
        }
    }
    ~AresLibrary() { ares_library_cleanup(); }
    AresLibrary(const AresLibrary&) = delete;
    AresLibrary& operator=(const AresLibrary&) = delete;
};

// Shared by every closing handle, so close callbacks never need the Resolver itself (which
// may already be gone when they run).
struct CloseTracker {
    size_t pending = 0;  // handles whose close callback has not run yet
    bool closing = false;
    std::function<void()> on_closed;
};

// A libuv handle owned by the Resolver while open. uv_close() hands it to its close callback,
// which is the only place its memory is freed.
struct HandleBox {
    union {
        uv_poll_t poll;
        uv_timer_t timer;
        uv_idle_t idle;
    };
    Resolver::Impl* owner = nullptr;
    ares_socket_t socket = ARES_SOCKET_BAD; // poll handles only
    std::shared_ptr<CloseTracker> tracker;  // set when closing

    HandleBox() { std::memset(static_cast<void*>(&poll), 0, sizeof(HandleBox::poll)); }
    // Every libuv handle type starts with the uv_handle_t fields, at the same address.
    uv_handle_t* handle() { return reinterpret_cast<uv_handle_t*>(&poll); }
};

void onHandleClosed(uv_handle_t* handle) {
    std::unique_ptr<HandleBox> box(static_cast<HandleBox*>(handle->data));
    std::shared_ptr<CloseTracker> tracker = std::move(box->tracker);
    box.reset();
    if (--tracker->pending == 0 && tracker->closing && tracker->on_closed) {
        // Moved out first: on_closed may destroy the Resolver, and with it other trackers.
        auto on_closed = std::move(tracker->on_closed);
        on_closed();
    }
}

// Short, stable texts for the failures callers are likely to branch on or log.
std::string errorText(int status) {
    switch (status) {
    case ARES_ENOTFOUND:
        return "NXDOMAIN";
    case ARES_ETIMEOUT:
        return "timeout";
    case ARES_ENODATA:
        return "no addresses";
    default:
        return ares_strerror(status);
    }
}

void setPort(sockaddr_storage& address, uint16_t port) {
    if (address.ss_family == AF_INET) {
        reinterpret_cast<sockaddr_in&>(address).sin_port = htons(port);
    } else if (address.ss_family == AF_INET6) {
        reinterpret_cast<sockaddr_in6&>(address).sin6_port = htons(port);
    }
}

bool sameAddress(const sockaddr_storage& a, const sockaddr_storage& b) {
    if (a.ss_family != b.ss_family) {
        return false;
    }
    if (a.ss_family == AF_INET) {
        return reinterpret_cast<const sockaddr_in&>(a).sin_addr.s_addr ==
               reinterpret_cast<const sockaddr_in&>(b).sin_addr.s_addr;
    }
    const auto& a6 = reinterpret_cast<const sockaddr_in6&>(a);
    const auto& b6 = reinterpret_cast<const sockaddr_in6&>(b);
    return std::memcmp(&a6.sin6_addr, &b6.sin6_addr, sizeof(a6.sin6_addr)) == 0 &&
           a6.sin6_scope_id == b6.sin6_scope_id;
}

// IPv4 first, then IPv6, each in answer order, without duplicates (c-ares may repeat an
// address, e.g. once per socket type). Ports are left 0. Returns the smallest TTL in seconds.
int collectAddresses(const ares_addrinfo* info, std::vector<sockaddr_storage>& out) {
    int min_ttl = std::numeric_limits<int>::max();
    for (int family : {AF_INET, AF_INET6}) {
        for (auto* node = info ? info->nodes : nullptr; node; node = node->ai_next) {
            if (node->ai_family != family || node->ai_addr == nullptr) {
                continue;
            }
            size_t size = family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
            if (static_cast<size_t>(node->ai_addrlen) < size) {
                continue;
            }
            sockaddr_storage address{};
            std::memcpy(&address, node->ai_addr, size);
            setPort(address, 0);
            min_ttl = std::min(min_ttl, std::max(node->ai_ttl, 0));
            auto same = [&](const sockaddr_storage& seen) { return sameAddress(seen, address); };
            if (std::none_of(out.begin(), out.end(), same)) {
                out.push_back(address);
            }
        }
    }
    return out.empty() ? 0 : min_ttl;
}

enum class Literal { no, yes, invalid };

// IP literals never reach c-ares: "192.0.2.1", "2001:db8::1", "[2001:db8::1]", "fe80::1%eth0".
Literal parseLiteral(std::string_view host, uint16_t port, sockaddr_storage& out) {
    bool bracketed = host.size() >= 2 && host.front() == '[' && host.back() == ']';
    std::string text(bracketed ? host.substr(1, host.size() - 2) : host);
    out = sockaddr_storage{};
    if (!bracketed) {
        sockaddr_in v4{};
        if (uv_ip4_addr(text.c_str(), port, &v4) == 0) {
            std::memcpy(&out, &v4, sizeof(v4));
            return Literal::yes;
        }
    }
    sockaddr_in6 v6{};
    if (text.find(':') != std::string::npos && uv_ip6_addr(text.c_str(), port, &v6) == 0) {
        std::memcpy(&out, &v6, sizeof(v6));
        return Literal::yes;
    }
    // Brackets only ever enclose an IPv6 address; anything else would be a bogus DNS name.
    return bracketed || host.find('[') != std::string_view::npos ? Literal::invalid : Literal::no;
}

std::string cacheKey(std::string_view host) {
    std::string key(host);
    std::transform(key.begin(), key.end(), key.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return key;
}

uint64_t clampTtl(uint64_t ttl_ms, const DnsConfig& config) {
    auto max_ttl = static_cast<uint64_t>(std::max<int64_t>(config.max_ttl.count(), 0));
    auto min_ttl = static_cast<uint64_t>(std::max<int64_t>(config.min_ttl.count(), 0));
    return std::max(std::min(ttl_ms, max_ttl), min_ttl);
}

} // namespace

struct Resolver::Impl {
    Impl(uv_loop_t* loop, const DnsConfig& config);
    ~Impl();
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;

    uint64_t resolve(std::string_view host, uint16_t port, Callback callback);
    void cancel(uint64_t id) { requests_.erase(id); }
    void close(std::function<void()> on_closed);

private:
    struct Waiter {
        uint64_t id;
        uint16_t port;
    };
    struct Ready {
        uint64_t id;
        DnsResult result;
    };
    // Handed to c-ares as the query's arg; freed when c-ares calls back (it always does,
    // with ARES_EDESTRUCTION at the latest).
    struct QueryContext {
        Impl* impl;
        std::string name;
    };

    std::unique_ptr<HandleBox> makeHandle();
    void closeHandle(std::unique_ptr<HandleBox> box);
    void shutdown();

    void startQuery(const std::string& name);
    void finishQuery(const std::string& name, int status, const ares_addrinfo* info);
    void enqueue(uint64_t id, DnsResult result);
    void rescheduleTimer();

    static void onSockState(void* data, ares_socket_t socket, int readable, int writable);
    static void onPoll(uv_poll_t* poll, int status, int events);
    static void onTimer(uv_timer_t* timer);
    static void onIdle(uv_idle_t* idle);
    static void onAddrinfo(void* arg, int status, int timeouts, ares_addrinfo* info);

public:
    uv_loop_t* loop_;
    DnsConfig config_;
    AresLibrary library_;
    ares_channel channel_ = nullptr;
    std::unique_ptr<HandleBox> timer_; // drives ares_timeout while queries are pending
    std::unique_ptr<HandleBox> idle_;  // delivers ready_ on the next loop turn
    std::unordered_map<ares_socket_t, std::unique_ptr<HandleBox>> polls_;
    std::shared_ptr<CloseTracker> tracker_ = std::make_shared<CloseTracker>();
    DnsCache cache_;
    std::unordered_map<std::string, std::vector<Waiter>> inflight_; // coalesced by name
    std::unordered_map<uint64_t, Callback> requests_;               // not yet delivered
    std::vector<Ready> ready_;
    uint64_t next_id_ = 1;
    Stats stats_;
    bool closing_ = false;
    // Lets onIdle notice that a callback destroyed the Resolver.
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

Resolver::Impl::Impl(uv_loop_t* loop, const DnsConfig& config) : loop_(loop), config_(config) {
    ares_options options{};
    options.sock_state_cb = &Impl::onSockState;
    options.sock_state_cb_data = this;
    options.timeout = static_cast<int>(std::clamp<int64_t>(config.timeout.count(), 1, 3600000));
    options.tries = static_cast<int>(std::clamp<uint32_t>(config.tries, 1, 100));
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
    if (int rc = ares_init_options(&channel_, &options, mask); rc != ARES_SUCCESS) {
        throw std::runtime_error(std::string("c-ares init: ") + ares_strerror(rc));
    }
    timer_ = makeHandle();
    uv_timer_init(loop_, &timer_->timer);
    idle_ = makeHandle();
    uv_idle_init(loop_, &idle_->idle);
}

Resolver::Impl::~Impl() {
    // Normally close() has completed and this is a no-op. Otherwise the handles are closed
    // now; their close callbacks free them later and touch only the shared tracker.
    shutdown();
}

std::unique_ptr<HandleBox> Resolver::Impl::makeHandle() {
    auto box = std::make_unique<HandleBox>();
    box->owner = this;
    box->handle()->data = box.get();
    return box;
}

void Resolver::Impl::closeHandle(std::unique_ptr<HandleBox> box) {
    if (!box) {
        return;
    }
    box->tracker = tracker_;
    ++tracker_->pending;
    HandleBox* raw = box.release(); // owned by onHandleClosed from here on
    raw->handle()->data = raw;
    uv_close(raw->handle(), onHandleClosed);
}

void Resolver::Impl::close(std::function<void()> on_closed) {
    if (closing_) {
        return;
    }
    tracker_->on_closed = std::move(on_closed);
    shutdown();
}

void Resolver::Impl::shutdown() {
    if (closing_) {
        return;
    }
    closing_ = true;
    tracker_->closing = true;
    requests_.clear();
    ready_.clear();
    inflight_.clear();
    if (channel_ != nullptr) {
        // Fails the pending queries with ARES_EDESTRUCTION (ignored by onAddrinfo while
        // closing) and reports every socket closed, which closes its poll handle.
        ares_destroy(channel_);
        channel_ = nullptr;
    }
    for (auto& [fd, box] : polls_) {
        closeHandle(std::move(box));
    }
    polls_.clear();
    closeHandle(std::move(timer_));
    closeHandle(std::move(idle_));
}

uint64_t Resolver::Impl::resolve(std::string_view host, uint16_t port, Callback callback) {
    if (closing_) {
        return 0; // nothing is delivered once close() has begun
    }
    uint64_t id = next_id_++;
    requests_.emplace(id, std::move(callback));

    sockaddr_storage literal{};
    switch (parseLiteral(host, port, literal)) {
    case Literal::yes: {
        ++stats_.literals;
        DnsResult result;
        result.ok = true;
        result.addresses.push_back(literal);
        enqueue(id, std::move(result));
        return id;
    }
    case Literal::invalid: {
        ++stats_.literals;
        DnsResult result;
        result.error = "invalid IP literal";
        enqueue(id, std::move(result));
        return id;
    }
    case Literal::no:
        break;
    }
    if (host.empty()) {
        DnsResult result;
        result.error = "empty host name";
        enqueue(id, std::move(result));
        return id;
    }

    std::string name = cacheKey(host);
    if (const DnsCacheEntry* entry = cache_.find(name, uv_now(loop_))) {
        ++stats_.cache_hits;
        DnsResult result;
        result.ok = entry->ok;
        result.error = entry->error;
        result.addresses = entry->addresses;
        for (auto& address : result.addresses) {
            setPort(address, port);
        }
        result.from_cache = true;
        enqueue(id, std::move(result));
        return id;
    }
    auto [it, inserted] = inflight_.try_emplace(name);
    it->second.push_back(Waiter{id, port});
    if (!inserted) {
        ++stats_.coalesced;
        return id;
    }
    ++stats_.queries;
    startQuery(name);
    return id;
}

void Resolver::Impl::startQuery(const std::string& name) {
    ares_addrinfo_hints hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    // No RFC 6724 sorting: it connect()s probe sockets synchronously; we order v4 then v6.
    hints.ai_flags = ARES_AI_NOSORT;
    auto context = std::make_unique<QueryContext>(QueryContext{this, name});
    // c-ares may answer (e.g. from /etc/hosts) inside this call; that only fills the cache
    // and the ready queue, so no user callback runs from within resolve().
    ares_getaddrinfo(channel_, context->name.c_str(), nullptr, &hints, &Impl::onAddrinfo,
                     context.get());
    context.release(); // owned by onAddrinfo, which has run or will run exactly once
    rescheduleTimer();
}

void Resolver::Impl::onAddrinfo(void* arg, int status, int /*timeouts*/, ares_addrinfo* info) {
    std::unique_ptr<QueryContext> context(static_cast<QueryContext*>(arg));
    std::unique_ptr<ares_addrinfo, decltype(&ares_freeaddrinfo)> owned(info, ares_freeaddrinfo);
    Impl* impl = context->impl;
    if (impl->closing_ || status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) {
        return;
    }
    impl->finishQuery(context->name, status, info);
}

void Resolver::Impl::finishQuery(const std::string& name, int status, const ares_addrinfo* info) {
    DnsCacheEntry entry;
    uint64_t ttl_ms = static_cast<uint64_t>(std::max<int64_t>(config_.negative_ttl.count(), 0));
    if (status == ARES_SUCCESS) {
        int ttl_s = collectAddresses(info, entry.addresses);
        if (entry.addresses.empty()) {
            entry.error = "no addresses";
        } else {
            entry.ok = true;
            // /etc/hosts answers carry TTL 0 and so live for min_ttl.
            ttl_ms = clampTtl(static_cast<uint64_t>(ttl_s) * 1000, config_);
        }
    } else {
        entry.error = errorText(status);
    }
    uint64_t now = uv_now(loop_);
    entry.expires_at = now + ttl_ms;

    if (auto waiters = inflight_.extract(name)) {
        for (const Waiter& waiter : waiters.mapped()) {
            if (requests_.count(waiter.id) == 0) {
                continue; // cancelled
            }
            DnsResult result;
            result.ok = entry.ok;
            result.error = entry.error;
            result.addresses = entry.addresses;
            for (auto& address : result.addresses) {
                setPort(address, waiter.port);
            }
            enqueue(waiter.id, std::move(result));
        }
    }
    cache_.store(name, std::move(entry), now);
}

void Resolver::Impl::enqueue(uint64_t id, DnsResult result) {
    ready_.push_back(Ready{id, std::move(result)});
    if (idle_ && !uv_is_active(idle_->handle())) {
        uv_idle_start(&idle_->idle, &Impl::onIdle);
    }
}

void Resolver::Impl::onIdle(uv_idle_t* idle) {
    Impl* impl = static_cast<HandleBox*>(idle->data)->owner;
    // Only what is ready now: answers queued by these callbacks wait for the next turn.
    std::vector<Ready> batch;
    batch.swap(impl->ready_);
    uv_idle_stop(idle);
    std::weak_ptr<bool> alive = impl->alive_;
    for (Ready& item : batch) {
        if (alive.expired()) {
            return; // a callback destroyed the Resolver
        }
        auto it = impl->requests_.find(item.id);
        if (it == impl->requests_.end()) {
            continue; // cancelled, or close() was called by an earlier callback
        }
        Callback callback = std::move(it->second);
        impl->requests_.erase(it);
        // May resolve, cancel, close, or destroy the issuer: nothing of this request is
        // touched afterwards.
        callback(item.result);
    }
}

void Resolver::Impl::rescheduleTimer() {
    if (closing_ || !timer_ || channel_ == nullptr) {
        return;
    }
    timeval tv{};
    if (ares_timeout(channel_, nullptr, &tv) == nullptr) {
        uv_timer_stop(&timer_->timer); // no query pending
        return;
    }
    uint64_t ms = static_cast<uint64_t>(tv.tv_sec) * 1000 +
                  (static_cast<uint64_t>(tv.tv_usec) + 999) / 1000;
    uv_timer_start(&timer_->timer, &Impl::onTimer, ms, 0);
}

void Resolver::Impl::onTimer(uv_timer_t* timer) {
    Impl* impl = static_cast<HandleBox*>(timer->data)->owner;
    ares_process_fd(impl->channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    impl->rescheduleTimer();
}

void Resolver::Impl::onSockState(void* data, ares_socket_t socket, int readable, int writable) {
    auto* impl = static_cast<Impl*>(data);
    auto it = impl->polls_.find(socket);
    if (!readable && !writable) {
        // c-ares is about to close the socket.
        if (it != impl->polls_.end()) {
            std::unique_ptr<HandleBox> box = std::move(it->second);
            impl->polls_.erase(it);
            uv_poll_stop(&box->poll);
            impl->closeHandle(std::move(box));
        }
        return;
    }
    if (impl->closing_) {
        return;
    }
    HandleBox* box = nullptr;
    if (it != impl->polls_.end()) {
        box = it->second.get();
    } else {
        auto fresh = impl->makeHandle();
        if (int rc = uv_poll_init_socket(impl->loop_, &fresh->poll, socket); rc != 0) {
            // Never registered with the loop, so it may be freed here. The query then ends
            // through the c-ares timeout.
            spdlog::warn("dns: cannot watch c-ares socket {}: {}", socket, uv_strerror(rc));
            return;
        }
        fresh->handle()->data = fresh.get();
        fresh->socket = socket;
        box = fresh.get();
        impl->polls_.emplace(socket, std::move(fresh));
    }
    int events = (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0);
    uv_poll_start(&box->poll, events, &Impl::onPoll);
}

void Resolver::Impl::onPoll(uv_poll_t* poll, int status, int events) {
    auto* box = static_cast<HandleBox*>(poll->data);
    Impl* impl = box->owner;
    ares_socket_t socket = box->socket;
    if (status < 0) {
        // Let c-ares find the error on the socket itself (as Node does).
        ares_process_fd(impl->channel_, socket, socket);
    } else {
        ares_process_fd(impl->channel_, (events & UV_READABLE) ? socket : ARES_SOCKET_BAD,
                        (events & UV_WRITABLE) ? socket : ARES_SOCKET_BAD);
    }
    // box may be closing now (c-ares closed the socket): not touched again.
    impl->rescheduleTimer();
}

Resolver::Resolver(uv_loop_t* loop, const DnsConfig& config)
    : impl_(std::make_unique<Impl>(loop, config)) {}

Resolver::~Resolver() = default;

uint64_t Resolver::resolve(std::string_view host, uint16_t port, Callback callback) {
    return impl_->resolve(host, port, std::move(callback));
}

void Resolver::cancel(uint64_t id) { impl_->cancel(id); }

void Resolver::close(std::function<void()> on_closed) { impl_->close(std::move(on_closed)); }

size_t Resolver::cacheSize() const { return impl_->cache_.size(); }

Resolver::Stats Resolver::stats() const { return impl_->stats_; }

} // namespace pooled
