// `pooled healthcheck`: a blocking one-shot GET against the admin endpoint, so that
// container HEALTHCHECKs and Kubernetes exec probes need no curl in the image.
#pragma once

#include <string>

namespace pooled {

// GET http://ADDRESS/PATH (ADDRESS is IP:PORT, "[v6]:PORT" allowed); true on a 200
// within timeout_ms. `error` says why not.
bool probeHealth(const std::string& address, const std::string& path, int timeout_ms,
                 std::string& error);

} // namespace pooled
