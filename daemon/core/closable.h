// Objects that own libuv handles. Their memory may only be freed once every
// handle's close callback has run, so destruction is a two-step: close(done),
// then the owner (Worker::retire) drops the object from inside `done`.
#pragma once

#include <uv.h>

#include <functional>

namespace pooled {

class Closable {
public:
    virtual ~Closable() = default;
    // Idempotent. Starts closing every handle; on_closed runs once the last
    // close callback has run. Nothing may be called on the object afterwards.
    virtual void close(std::function<void()> on_closed) = 0;
};

// Counts outstanding uv_close calls for an object with several handles.
class HandleCloser {
public:
    // Closes `handle` (if open) and counts it; call for each handle, then arm().
    void add(uv_handle_t* handle);
    void arm(std::function<void()> on_closed);
    bool closing() const { return armed_ || pending_ > 0; }

private:
    static void onClosed(uv_handle_t* handle);
    void done();
    int pending_ = 0;
    bool armed_ = false;
    std::function<void()> on_closed_;
};

} // namespace pooled
