// Invariants as code: POOLED_ASSERT(cond, "why it must hold") aborts with the file, line
// and reason when an invariant is broken. Active in the test and sanitizer builds (Debug,
// or -DPOOLED_ASSERTIONS=ON, which scripts/test sets); compiled out of Release, where the
// condition is not evaluated, so an assertion costs the hot path nothing.
#pragma once

#if !defined(NDEBUG) || defined(POOLED_ASSERTIONS)
#define POOLED_ASSERTIONS_ACTIVE 1
#else
#define POOLED_ASSERTIONS_ACTIVE 0
#endif

namespace pooled {
[[noreturn]] void assertionFailed(const char* condition, const char* why, const char* file,
                                  int line);
} // namespace pooled

#if POOLED_ASSERTIONS_ACTIVE
#define POOLED_ASSERT(condition, why)                                                    \
    do {                                                                                   \
        if (!(condition)) [[unlikely]]                                                     \
            ::pooled::assertionFailed(#condition, why, __FILE__, __LINE__);                \
    } while (0)
#else
#define POOLED_ASSERT(condition, why)                                                    \
    do {                                                                                   \
        (void)sizeof(condition);                                                           \
    } while (0)
#endif
