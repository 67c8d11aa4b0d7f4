// Proxy credentials checked off the event loop: see auth_check.h.
#include "proxy/auth_check.h"

#include "proxy/proxy_auth.h"

namespace pooled {

AuthCheck* AuthCheck::start(uv_loop_t* loop, std::shared_ptr<const Credentials> credentials,
                            std::string header_value, std::function<void(bool)> done) {
    auto check = std::make_unique<AuthCheck>();
    check->credentials_ = std::move(credentials);
    check->header_value_ = std::move(header_value);
    check->done_ = std::move(done);
    check->req_.data = check.get();
    if (uv_queue_work(loop, &check->req_, &AuthCheck::work, &AuthCheck::afterWork) != 0) {
        // Cannot happen with a valid loop and callbacks; answer on the spot rather than hang.
        check->done_(check->credentials_->check(check->header_value_));
        return nullptr;
    }
    return check.release(); // owned by the queued request until afterWork
}

void AuthCheck::work(uv_work_t* req) {
    auto* self = static_cast<AuthCheck*>(req->data);
    self->ok_ = self->credentials_->check(self->header_value_);
}

void AuthCheck::afterWork(uv_work_t* req, int status) {
    std::unique_ptr<AuthCheck> self(static_cast<AuthCheck*>(req->data));
    if (self->done_)
        self->done_(status == 0 && self->ok_);
}

} // namespace pooled
