// reuseVerdict: see reuse_policy.h. The first rung that fails names the cause.
#include "pool/reuse_policy.h"

namespace pooled {

ReuseVerdict reuseVerdict(const ReuseFacts& f) {
    // The origin answered before the request body went out whole: the rest is not ours to
    // send, so the connection's framing is in doubt.
    if (!f.request_done)
        return {false, "early_response"};
    if (!f.response_allows_reuse)
        return {false, "not_reusable"};
    if (f.draining)
        return {false, "shutdown"};
    if (f.idle_timeout_ms <= 0)
        return {false, "idle_timeout"};
    if (f.max_requests != 0 && f.requests >= f.max_requests)
        return {false, "max_requests"};
    if (f.expires_us != 0 && f.now_us >= f.expires_us)
        return {false, "lifetime"};
    // Idle connections that queued requests will take next turn are not idle: the cap must
    // not close them only for those requests to open new ones.
    if (f.idle >= f.max_idle && f.idle >= f.waiters)
        return {false, "max_idle"};
    // Another origin waits for a slot under max_connections_total: an idle connection here
    // is worth less than its waiting request.
    if (f.waiters == 0 && f.others_starved)
        return {false, "pool_full"};
    return {true, {}};
}

} // namespace pooled
