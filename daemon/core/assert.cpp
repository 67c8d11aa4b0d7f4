// The one place a broken invariant ends up: say what and where on stderr, then abort so
// the sanitizer (or a core dump) shows how it came to this.
#include "core/assert.h"

#include <cstdio>
#include <cstdlib>

namespace pooled {

void assertionFailed(const char* condition, const char* why, const char* file, int line) {
    std::fprintf(stderr, "pooled: invariant broken at %s:%d: %s (%s)\n", file, line, why,
                 condition);
    std::fflush(stderr);
    std::abort();
}

} // namespace pooled
