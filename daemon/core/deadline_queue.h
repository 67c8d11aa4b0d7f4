// Timeouts without a timer per connection. Every kind of timeout has a fixed
// duration, so deadlines armed for one duration expire in arming order: an
// intrusive FIFO per duration, with one uv_timer_t armed for its head, is exact
// and arms or disarms in O(1). Ten thousand idle clients share one timer.
#pragma once

#include "core/closable.h"

#include <uv.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace pooled {

class DeadlineQueue;

// The hook an object embeds to be armed in a DeadlineTimers (24 bytes).
class Deadline {
public:
    Deadline() = default;
    Deadline(const Deadline&) = delete;
    Deadline& operator=(const Deadline&) = delete;
    ~Deadline() { disarm(); }

    bool armed() const { return next_ != nullptr; }
    // Loop time (ms) it expires at; meaningful while armed.
    uint64_t at() const { return at_; }
    void disarm();

private:
    friend class DeadlineQueue;
    Deadline* prev_ = nullptr;
    Deadline* next_ = nullptr;
    uint64_t at_ = 0;
};

// One FIFO of deadlines of the same duration: a circular list around a sentinel.
class DeadlineQueue {
public:
    using FireFn = void (*)(Deadline& deadline, void* context);

    DeadlineQueue(uv_loop_t* loop, uint64_t duration_ms, FireFn fire, void* context);
    DeadlineQueue(const DeadlineQueue&) = delete;
    DeadlineQueue& operator=(const DeadlineQueue&) = delete;
    // The timer handle must be closed, and its close callback run, before this.
    ~DeadlineQueue() = default;

    uint64_t duration() const { return duration_ms_; }
    bool empty() const { return sentinel_.next_ == &sentinel_; }
    // (Re)arms `deadline` for now + duration, at the tail.
    void arm(Deadline& deadline, uint64_t now);
    // Fires every deadline due at `now`, in order; each is disarmed before its callback,
    // which may arm or disarm anything. Then aims the timer at the new head.
    void expire(uint64_t now);
    uv_handle_t* timerHandle() { return reinterpret_cast<uv_handle_t*>(&timer_); }

private:
    static void onTimer(uv_timer_t* timer);
    void aim(uint64_t now);

    uv_loop_t* loop_;
    uint64_t duration_ms_;
    FireFn fire_;
    void* context_;
    Deadline sentinel_;
    uv_timer_t timer_;
    // Loop time the timer fires at; 0 = stopped. The timer is left running when its head is
    // disarmed (cheaper than a heap removal): it then fires early and re-aims.
    uint64_t timer_at_ = 0;
};

// The queues of one loop, one per duration in use, created on first use. Durations come
// from the configuration, so there are a handful; a reload that changes one adds a queue.
class DeadlineTimers {
public:
    DeadlineTimers(uv_loop_t* loop, DeadlineQueue::FireFn fire, void* context)
        : loop_(loop), fire_(fire), context_(context) {}
    // Arms `deadline` for ms from now (ms > 0), moving it from wherever it was armed.
    void arm(Deadline& deadline, uint64_t ms);
    // Closes every timer through `closer`; this object must outlive the close callbacks.
    void closeHandles(HandleCloser& closer);
    size_t queueCount() const { return queues_.size(); }

private:
    uv_loop_t* loop_;
    DeadlineQueue::FireFn fire_;
    void* context_;
    std::vector<std::unique_ptr<DeadlineQueue>> queues_;
};

} // namespace pooled
