// systemd integration without libsystemd: the sd_notify datagram protocol
// (READY=1, RELOADING=1, STOPPING=1, STATUS=, WATCHDOG=1), the watchdog timer, and
// socket activation (LISTEN_FDS / LISTEN_PID). All of it is a no-op when the
// environment does not ask for it, so the same binary runs anywhere.
#pragma once

#include "core/closable.h"

#include <uv.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace pooled {

class SystemdNotifier {
public:
    // From $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace).
    static SystemdNotifier fromEnvironment();
    explicit SystemdNotifier(std::string socket_path) : path_(std::move(socket_path)) {}

    bool enabled() const { return !path_.empty(); }
    // Sends one datagram of newline-separated assignments; false on failure (or disabled).
    bool send(std::string_view state) const;

    bool ready(std::string_view status) const;
    bool reloading() const; // with MONOTONIC_USEC, as systemd 253+ wants for notify-reload
    bool stopping(std::string_view status) const;
    bool status(std::string_view status) const;
    bool watchdog() const { return send("WATCHDOG=1"); }

private:
    std::string path_;
};

// Pings the watchdog from the event loop at half of $WATCHDOG_USEC: a loop that is
// stuck stops the pings, and systemd restarts the service. Inactive when systemd
// asked for no watchdog (or for another PID via $WATCHDOG_PID).
class WatchdogTimer {
public:
    // on_tick runs before each ping (e.g. to refresh STATUS=).
    WatchdogTimer(uv_loop_t* loop, const SystemdNotifier& notifier, std::function<void()> on_tick);
    ~WatchdogTimer();
    WatchdogTimer(const WatchdogTimer&) = delete;
    WatchdogTimer& operator=(const WatchdogTimer&) = delete;
    bool active() const { return interval_ms_ > 0; }
    uint64_t intervalMs() const { return interval_ms_; }
    // Stops pinging; the handle closes on the next loop run.
    void close();

private:
    static void onTimer(uv_timer_t* timer);

    const SystemdNotifier& notifier_;
    std::function<void()> on_tick_;
    uv_timer_t timer_;
    HandleCloser closer_;
    uint64_t interval_ms_ = 0;
    bool closed_ = false;
};

// The watchdog interval asked for by the environment, in microseconds; 0 = none.
uint64_t watchdogUsecFromEnvironment();

// Socket activation: the listening sockets systemd passed (fd 3, 4, …) when LISTEN_PID
// is this process; empty otherwise. Marks them close-on-exec and unsets the variables
// so that children do not inherit them.
std::vector<int> takeListenFds();

} // namespace pooled
