// SIGHUP: re-read the configuration and hand it to the Worker. A config that does not
// load (or a new address that cannot be bound) leaves the running one in place; the
// error is logged with its file, line and column, and pooled serves on.
#pragma once

#include "config/config.h"
#include "core/closable.h"

#include <uv.h>

#include <functional>
#include <memory>

namespace pooled {

class SystemdNotifier;
class Worker;

class Reloader {
public:
    // `load` reads the config again (file plus command-line overrides); it throws
    // ConfigError (or std::exception) when the result is not usable.
    Reloader(uv_loop_t* loop, Worker& worker, const SystemdNotifier& notifier,
             std::function<Config()> load);
    ~Reloader();
    Reloader(const Reloader&) = delete;
    Reloader& operator=(const Reloader&) = delete;
    // Applies the config now; true when it was applied. SIGHUP calls this.
    bool reload();
    // Stops watching SIGHUP; the handle closes on the next loop run.
    void close();

private:
    static void onSignal(uv_signal_t* handle, int signum);

    Worker& worker_;
    const SystemdNotifier& notifier_;
    std::function<Config()> load_;
    uv_signal_t sighup_;
    HandleCloser closer_;
    bool closed_ = false;
};

} // namespace pooled
