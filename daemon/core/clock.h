// Time sources: monotonic microseconds for durations, wall clock for log stamps.
#pragma once

#include <uv.h>

#include <chrono>
#include <cstdint>

namespace pooled {

inline int64_t monotonicUs() {
    return static_cast<int64_t>(uv_hrtime() / 1000);
}

inline int64_t wallClockUs() {
    using namespace std::chrono;
    return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

} // namespace pooled
