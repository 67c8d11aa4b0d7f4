// Small helpers over MessageHead.
#include "http/message.h"

namespace pooled {

const Header* MessageHead::find(std::string_view name) const {
    for (const auto& h : headers)
        if (equalsIgnoreCase(h.name, name))
            return &h;
    return nullptr;
}

void MessageHead::clear() {
    method.clear();
    target.clear();
    status = 0;
    reason.clear();
    version_major = 1;
    version_minor = 1;
    headers.clear();
    chunked = false;
    content_length = -1;
    keep_alive = true;
    upgrade = false;
}

} // namespace pooled
