// DeadlineQueue, DeadlineTimers: see deadline_queue.h.
#include "core/deadline_queue.h"

namespace pooled {

void Deadline::disarm() {
    if (!next_)
        return;
    prev_->next_ = next_;
    next_->prev_ = prev_;
    prev_ = next_ = nullptr;
}

DeadlineQueue::DeadlineQueue(uv_loop_t* loop, uint64_t duration_ms, FireFn fire, void* context)
    : loop_(loop), duration_ms_(duration_ms), fire_(fire), context_(context) {
    sentinel_.prev_ = sentinel_.next_ = &sentinel_;
    uv_timer_init(loop_, &timer_);
    timer_.data = this;
}

void DeadlineQueue::arm(Deadline& deadline, uint64_t now) {
    deadline.disarm();
    deadline.at_ = now + duration_ms_;
    // Same duration, non-decreasing loop time: the tail is always the latest.
    deadline.prev_ = sentinel_.prev_;
    deadline.next_ = &sentinel_;
    sentinel_.prev_->next_ = &deadline;
    sentinel_.prev_ = &deadline;
    if (timer_at_ == 0)
        aim(now);
}

void DeadlineQueue::expire(uint64_t now) {
    // Bounded: each pass removes the head, and a deadline armed meanwhile is due later.
    while (!empty() && sentinel_.next_->at_ <= now) {
        Deadline& due = *sentinel_.next_;
        due.disarm();
        fire_(due, context_);
    }
    timer_at_ = 0;
    aim(now);
}

void DeadlineQueue::aim(uint64_t now) {
    if (empty()) {
        // Left running, it would fire into an empty queue; stopping is a cheap heap removal
        // done once per emptying, not per disarm.
        uv_timer_stop(&timer_);
        timer_at_ = 0;
        return;
    }
    uint64_t at = sentinel_.next_->at_;
    timer_at_ = at;
    uv_timer_start(&timer_, &DeadlineQueue::onTimer, at > now ? at - now : 0, 0);
}

void DeadlineQueue::onTimer(uv_timer_t* timer) {
    auto* self = static_cast<DeadlineQueue*>(timer->data);
    self->expire(uv_now(self->loop_));
}

void DeadlineTimers::arm(Deadline& deadline, uint64_t ms) {
    DeadlineQueue* queue = nullptr;
    for (auto& q : queues_)
        if (q->duration() == ms) {
            queue = q.get();
            break;
        }
    if (!queue) {
        queues_.push_back(std::make_unique<DeadlineQueue>(loop_, ms, fire_, context_));
        queue = queues_.back().get();
    }
    queue->arm(deadline, uv_now(loop_));
}

void DeadlineTimers::closeHandles(HandleCloser& closer) {
    for (auto& q : queues_)
        closer.add(q->timerHandle());
}

} // namespace pooled
