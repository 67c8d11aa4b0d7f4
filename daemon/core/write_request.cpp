// writeOwned: see write_request.h.
#include "core/write_request.h"

#include <memory>

namespace pooled {

namespace {

struct WriteRequest {
    uv_write_t req;
    std::string bytes;
    void* owner;
    WriteDoneFn done;
};

void onWritten(uv_write_t* req, int status) {
    std::unique_ptr<WriteRequest> w(static_cast<WriteRequest*>(req->data));
    w->done(w->owner, status);
}

} // namespace

int writeOwned(uv_stream_t* stream, std::string bytes, void* owner, WriteDoneFn done) {
    auto w = std::make_unique<WriteRequest>();
    w->bytes = std::move(bytes);
    w->owner = owner;
    w->done = done;
    w->req.data = w.get();
    uv_buf_t buf = uv_buf_init(w->bytes.data(), static_cast<unsigned>(w->bytes.size()));
    int rc = uv_write(&w->req, stream, &buf, 1, &onWritten);
    if (rc == 0)
        w.release(); // owned by libuv until onWritten
    return rc;
}

} // namespace pooled
