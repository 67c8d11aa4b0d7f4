// Specification of the per-loop deadline queues that replace a timer per client
// connection: expiry in arming order, re-arming moves a deadline, disarming
// removes it, one timer per duration, and callbacks may arm and disarm freely.
#include "core/deadline_queue.h"

#include <catch2/catch.hpp>

#include <vector>

using namespace pooled;

namespace {

struct Item : Deadline {
    int id = 0;
};

struct Fired {
    std::vector<int> ids;
    // Optional action run from the callback, on the fired item.
    void (*then)(Item&, Fired&) = nullptr;
    DeadlineQueue* queue = nullptr;
    uint64_t now = 0;
};

void record(Deadline& deadline, void* context) {
    auto& item = static_cast<Item&>(deadline);
    auto& fired = *static_cast<Fired*>(context);
    fired.ids.push_back(item.id);
    if (fired.then)
        fired.then(item, fired);
}

struct Loop {
    uv_loop_t loop;
    Loop() { uv_loop_init(&loop); }
    ~Loop() {
        uv_run(&loop, UV_RUN_NOWAIT);
        uv_loop_close(&loop);
    }
};

// Closes a queue's timer and runs the loop until its close callback ran.
void closeQueue(Loop& l, DeadlineQueue& q) {
    HandleCloser closer;
    bool closed = false;
    closer.add(q.timerHandle());
    closer.arm([&] { closed = true; });
    for (int i = 0; i < 10 && !closed; ++i)
        uv_run(&l.loop, UV_RUN_NOWAIT);
    REQUIRE(closed);
}

} // namespace

TEST_CASE("deadlines of one duration expire in arming order, only once due") {
    Loop l;
    Fired fired;
    DeadlineQueue q(&l.loop, 100, &record, &fired);
    Item a, b, c;
    a.id = 1, b.id = 2, c.id = 3;
    q.arm(a, 1000);
    q.arm(b, 1010);
    q.arm(c, 1020);
    q.expire(1099);
    CHECK(fired.ids.empty());
    q.expire(1110);
    CHECK(fired.ids == std::vector<int>{1, 2});
    CHECK_FALSE(a.armed());
    CHECK(c.armed());
    q.expire(5000);
    CHECK(fired.ids == std::vector<int>{1, 2, 3});
    CHECK(q.empty());
    closeQueue(l, q);
}

TEST_CASE("re-arming a deadline moves it to the tail; disarming removes it") {
    Loop l;
    Fired fired;
    DeadlineQueue q(&l.loop, 100, &record, &fired);
    Item a, b, c;
    a.id = 1, b.id = 2, c.id = 3;
    q.arm(a, 1000);
    q.arm(b, 1000);
    q.arm(c, 1000);
    q.arm(a, 1050); // activity on a: its deadline moves later
    b.disarm();
    CHECK_FALSE(b.armed());
    b.disarm(); // idempotent
    q.expire(1100);
    CHECK(fired.ids == std::vector<int>{3});
    q.expire(1150);
    CHECK(fired.ids == std::vector<int>{3, 1});
    closeQueue(l, q);
}

TEST_CASE("a callback may re-arm the deadline it fires for without looping") {
    Loop l;
    Fired fired;
    DeadlineQueue q(&l.loop, 100, &record, &fired);
    fired.queue = &q;
    fired.now = 1100;
    fired.then = [](Item& item, Fired& f) { f.queue->arm(item, f.now); };
    Item a;
    a.id = 7;
    q.arm(a, 1000);
    q.expire(1100);
    CHECK(fired.ids == std::vector<int>{7});
    CHECK(a.armed());
    CHECK(a.at() == 1200);
    a.disarm();
    closeQueue(l, q);
}

TEST_CASE("a destroyed deadline leaves its queue") {
    Loop l;
    Fired fired;
    DeadlineQueue q(&l.loop, 100, &record, &fired);
    {
        Item gone;
        q.arm(gone, 0);
    }
    CHECK(q.empty());
    closeQueue(l, q);
}

TEST_CASE("the loop fires deadlines of several durations, one queue per duration") {
    Loop l;
    Fired fired;
    DeadlineTimers timers(&l.loop, &record, &fired);
    Item a, b, c, d;
    a.id = 1, b.id = 2, c.id = 3, d.id = 4;
    timers.arm(a, 30);
    timers.arm(b, 5);
    timers.arm(c, 30);
    timers.arm(d, 5);
    d.disarm();
    CHECK(timers.queueCount() == 2);
    // Every queue stops its timer once empty, so the loop ends by itself (bounded anyway).
    for (int i = 0; i < 100 && fired.ids.size() < 3; ++i)
        uv_run(&l.loop, UV_RUN_ONCE);
    CHECK(fired.ids == std::vector<int>{2, 1, 3});
    HandleCloser closer;
    bool closed = false;
    timers.closeHandles(closer);
    closer.arm([&] { closed = true; });
    for (int i = 0; i < 10 && !closed; ++i)
        uv_run(&l.loop, UV_RUN_NOWAIT);
    CHECK(closed);
}
