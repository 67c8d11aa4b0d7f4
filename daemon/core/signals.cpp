// SignalHandlers: see signals.h.
#include "core/signals.h"

#include <spdlog/spdlog.h>

#include <cstdlib>

namespace pooled {

SignalHandlers::SignalHandlers(uv_loop_t* loop, std::function<void()> on_stop)
    : on_stop_(std::move(on_stop)) {
    uv_signal_init(loop, &sigint_);
    uv_signal_init(loop, &sigterm_);
    sigint_.data = sigterm_.data = this;
    uv_signal_start(&sigint_, &SignalHandlers::onSignal, SIGINT);
    uv_signal_start(&sigterm_, &SignalHandlers::onSignal, SIGTERM);
    // Watching signals must not keep the loop alive once the work is done.
    uv_unref(reinterpret_cast<uv_handle_t*>(&sigint_));
    uv_unref(reinterpret_cast<uv_handle_t*>(&sigterm_));
}

SignalHandlers::~SignalHandlers() {
    close();
}

void SignalHandlers::close() {
    if (closed_)
        return;
    closed_ = true;
    closer_.add(reinterpret_cast<uv_handle_t*>(&sigint_));
    closer_.add(reinterpret_cast<uv_handle_t*>(&sigterm_));
    closer_.arm([] {});
}

void SignalHandlers::onSignal(uv_signal_t* handle, int signum) {
    auto* self = static_cast<SignalHandlers*>(handle->data);
    if (++self->received_ > 1) {
        spdlog::warn("second signal {}: exiting now", signum);
        spdlog::default_logger()->flush();
        std::_Exit(1);
    }
    spdlog::info("signal {}: shutting down", signum);
    self->on_stop_();
}

} // namespace pooled
