// systemd integration: see systemd_notify.h. The protocol is small enough to speak
// directly (sd_notify(3), sd_listen_fds(3)); linking libsystemd would add a runtime
// dependency the container image and non-systemd hosts do not need.
#include "core/systemd_notify.h"

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace pooled {

namespace {

constexpr int kListenFdsStart = 3; // SD_LISTEN_FDS_START

bool parseUnsigned(const char* text, uint64_t& out) {
    if (!text || !*text)
        return false;
    char* end = nullptr;
    errno = 0;
    unsigned long long value = std::strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || text[0] == '-')
        return false;
    out = value;
    return true;
}

} // namespace

SystemdNotifier SystemdNotifier::fromEnvironment() {
    const char* path = std::getenv("NOTIFY_SOCKET");
    return SystemdNotifier(path ? path : "");
}

bool SystemdNotifier::send(std::string_view state) const {
    if (path_.empty())
        return false;
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path_.size() >= sizeof address.sun_path || (path_[0] != '/' && path_[0] != '@'))
        return false;
    std::memcpy(address.sun_path, path_.data(), path_.size());
    socklen_t length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path_.size());
    if (path_[0] == '@')
        address.sun_path[0] = '\0'; // abstract namespace: no trailing NUL, length says where
    else
        length += 1;
    int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    ssize_t sent = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                            reinterpret_cast<const sockaddr*>(&address), length);
    const int error = errno;
    ::close(fd);
    if (sent < 0) {
        spdlog::debug("sd_notify to {}: {}", path_, std::strerror(error));
        return false;
    }
    return static_cast<size_t>(sent) == state.size();
}

bool SystemdNotifier::ready(std::string_view status) const {
    return send("READY=1\nSTATUS=" + std::string(status));
}

bool SystemdNotifier::reloading() const {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    const uint64_t usec = static_cast<uint64_t>(now.tv_sec) * 1000000u +
                          static_cast<uint64_t>(now.tv_nsec) / 1000u;
    return send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec) +
                "\nSTATUS=reloading configuration");
}

bool SystemdNotifier::stopping(std::string_view status) const {
    return send("STOPPING=1\nSTATUS=" + std::string(status));
}

bool SystemdNotifier::status(std::string_view status) const {
    return send("STATUS=" + std::string(status));
}

uint64_t watchdogUsecFromEnvironment() {
    uint64_t usec = 0;
    if (!parseUnsigned(std::getenv("WATCHDOG_USEC"), usec))
        return 0;
    uint64_t pid = 0;
    if (parseUnsigned(std::getenv("WATCHDOG_PID"), pid) && pid != static_cast<uint64_t>(getpid()))
        return 0; // meant for another process (e.g. a wrapper)
    return usec;
}

WatchdogTimer::WatchdogTimer(uv_loop_t* loop, const SystemdNotifier& notifier,
                             std::function<void()> on_tick)
    : notifier_(notifier), on_tick_(std::move(on_tick)) {
    uv_timer_init(loop, &timer_);
    timer_.data = this;
    const uint64_t usec = notifier_.enabled() ? watchdogUsecFromEnvironment() : 0;
    // Half the interval, as sd_watchdog_enabled(3) recommends; at least 1 ms.
    interval_ms_ = usec == 0 ? 0 : std::max<uint64_t>(usec / 2000, 1);
    if (interval_ms_ > 0) {
        uv_timer_start(&timer_, &WatchdogTimer::onTimer, 0, interval_ms_);
        // Pinging must not keep the loop alive once the work is done.
        uv_unref(reinterpret_cast<uv_handle_t*>(&timer_));
    }
}

WatchdogTimer::~WatchdogTimer() {
    close();
}

void WatchdogTimer::close() {
    if (closed_)
        return;
    closed_ = true;
    closer_.add(reinterpret_cast<uv_handle_t*>(&timer_));
    closer_.arm([] {});
}

void WatchdogTimer::onTimer(uv_timer_t* timer) {
    auto* self = static_cast<WatchdogTimer*>(timer->data);
    if (self->on_tick_)
        self->on_tick_();
    self->notifier_.watchdog();
}

std::vector<int> takeListenFds() {
    std::vector<int> fds;
    uint64_t pid = 0;
    uint64_t count = 0;
    const bool ours = parseUnsigned(std::getenv("LISTEN_PID"), pid) &&
                      pid == static_cast<uint64_t>(getpid()) &&
                      parseUnsigned(std::getenv("LISTEN_FDS"), count);
    // Unset in every case: a child started later must never believe they are its own.
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");
    ::unsetenv("LISTEN_FDNAMES");
    if (!ours)
        return fds;
    for (uint64_t i = 0; i < count && i < 1024; ++i) {
        int fd = kListenFdsStart + static_cast<int>(i);
        // A bad fd stays in the list: its listener then fails naming it, and the order of
        // the others still matches the config.
        if (int flags = ::fcntl(fd, F_GETFD); flags >= 0)
            ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
        fds.push_back(fd);
    }
    return fds;
}

} // namespace pooled
