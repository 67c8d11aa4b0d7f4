// The test build checks invariants: POOLED_ASSERT is compiled in, not away.
#include "core/assert.h"

#include <catch2/catch.hpp>

TEST_CASE("invariant checks are active in the test and sanitizer builds") {
    REQUIRE(POOLED_ASSERTIONS_ACTIVE == 1);
    int evaluated = 0;
    POOLED_ASSERT(++evaluated == 1, "the condition is evaluated once");
    REQUIRE(evaluated == 1);
}
