// Reloader: see reloader.h.
#include "core/reloader.h"

#include "core/systemd_notify.h"
#include "core/worker.h"

#include <spdlog/spdlog.h>

#include <csignal>
#include <exception>

namespace pooled {

Reloader::Reloader(uv_loop_t* loop, Worker& worker, const SystemdNotifier& notifier,
                   std::function<Config()> load)
    : worker_(worker), notifier_(notifier), load_(std::move(load)) {
    uv_signal_init(loop, &sighup_);
    sighup_.data = this;
    uv_signal_start(&sighup_, &Reloader::onSignal, SIGHUP);
    // Watching SIGHUP must not keep the loop alive once the work is done.
    uv_unref(reinterpret_cast<uv_handle_t*>(&sighup_));
}

Reloader::~Reloader() {
    close();
}

void Reloader::close() {
    if (closed_)
        return;
    closed_ = true;
    closer_.add(reinterpret_cast<uv_handle_t*>(&sighup_));
    closer_.arm([] {});
}

void Reloader::onSignal(uv_signal_t* handle, int) {
    static_cast<Reloader*>(handle->data)->reload();
}

bool Reloader::reload() {
    if (worker_.draining())
        return false; // shutting down: nothing to reload into
    spdlog::info("SIGHUP: reloading configuration");
    notifier_.reloading();
    bool ok = false;
    try {
        worker_.reload(std::make_shared<const Config>(load_()));
        ok = true;
        spdlog::info("reload: configuration applied");
    } catch (const std::exception& e) {
        // ConfigError's text is "FILE:LINE:COLUMN: key: message".
        spdlog::error("reload failed, keeping the running configuration: {}", e.what());
    }
    worker_.metrics().onReload(ok);
    notifier_.ready(ok ? worker_.statusLine() : "reload failed; " + worker_.statusLine());
    return ok;
}

} // namespace pooled
