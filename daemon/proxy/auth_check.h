// Checks proxy credentials on libuv's thread pool: crypt(3) is slow on purpose (ms per
// hash), and a client guessing passwords must not stall every other connection on the
// loop. The session waits in Phase::Waiting, reading nothing more, until done runs.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>

namespace pooled {

class Credentials;

class AuthCheck {
public:
    // `done(ok)` runs on the loop thread unless cancel() was called first.
    static AuthCheck* start(uv_loop_t* loop, std::shared_ptr<const Credentials> credentials,
                            std::string header_value, std::function<void(bool)> done);
    // The session is going away: the work finishes, done is dropped, memory is freed
    // in the after-work callback (a queued uv_work_t cannot be freed before that).
    void cancel() { done_ = nullptr; }

private:
    static void work(uv_work_t* req);
    static void afterWork(uv_work_t* req, int status);

    uv_work_t req_{};
    std::shared_ptr<const Credentials> credentials_;
    std::string header_value_;
    std::function<void(bool)> done_;
    bool ok_ = false;
};

} // namespace pooled
