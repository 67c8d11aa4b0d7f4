// SIGINT/SIGTERM: the first starts a graceful drain, a second exits at once.
#pragma once

#include "core/closable.h"

#include <uv.h>

#include <functional>

namespace pooled {

class SignalHandlers {
public:
    SignalHandlers(uv_loop_t* loop, std::function<void()> on_stop);
    ~SignalHandlers();
    SignalHandlers(const SignalHandlers&) = delete;
    SignalHandlers& operator=(const SignalHandlers&) = delete;
    // Stops watching; the handles close on the next loop run.
    void close();

private:
    static void onSignal(uv_signal_t* handle, int signum);

    uv_signal_t sigint_;
    uv_signal_t sigterm_;
    std::function<void()> on_stop_;
    HandleCloser closer_;
    int received_ = 0;
    bool closed_ = false;
};

} // namespace pooled
