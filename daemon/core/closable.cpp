// HandleCloser: see closable.h.
#include "core/closable.h"

#include "core/assert.h"

namespace pooled {

void HandleCloser::add(uv_handle_t* handle) {
    if (uv_is_closing(handle))
        return;
    POOLED_ASSERT(!armed_, "every handle is added before arm(): the owner may be gone after");
    handle->data = this;
    ++pending_;
    uv_close(handle, &HandleCloser::onClosed);
}

void HandleCloser::arm(std::function<void()> on_closed) {
    POOLED_ASSERT(!armed_, "one close per owner: arm() runs once");
    armed_ = true;
    on_closed_ = std::move(on_closed);
    if (pending_ == 0)
        done();
}

void HandleCloser::onClosed(uv_handle_t* handle) {
    auto* self = static_cast<HandleCloser*>(handle->data);
    POOLED_ASSERT(self->pending_ > 0, "a close callback runs once per added handle");
    if (--self->pending_ == 0 && self->armed_)
        self->done();
}

void HandleCloser::done() {
    // Move out first: the callback usually destroys the object holding *this.
    auto callback = std::move(on_closed_);
    on_closed_ = nullptr;
    if (callback)
        callback();
}

} // namespace pooled
