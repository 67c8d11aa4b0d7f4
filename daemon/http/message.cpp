// Small helpers over MessageHead.
#include "http/message.h"

namespace pooled {

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
    if (a.size() != b.size())
        return false;
    for (size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z')
            x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = static_cast<char>(y - 'A' + 'a');
        if (x != y)
            return false;
    }
    return true;
}

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
