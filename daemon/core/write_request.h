// uv_write with owned storage: the bytes live until libuv's write callback, which
// then reports to the stream's owner. Owners outlive their pending writes because
// libuv runs write callbacks (ECANCELED) before a handle's close callback.
#pragma once

#include <uv.h>

#include <string>

namespace pooled {

using WriteDoneFn = void (*)(void* owner, int status);

// Queues `bytes` on `stream`. Returns 0 or a libuv error (then no callback runs).
int writeOwned(uv_stream_t* stream, std::string bytes, void* owner, WriteDoneFn done);

} // namespace pooled
