// Shared helpers of the configuration specs: load YAML text, or get the error it raises.
#pragma once

#include "config/config_loader.h"

#include <catch2/catch.hpp>

#include <string>

namespace pooled::test {

inline Config load(const std::string& yaml) {
    return loadConfigString(yaml, "test.yaml");
}

// The ConfigError that loading `yaml` raises; fails the test if it loads.
inline ConfigError errorOf(const std::string& yaml) {
    try {
        load(yaml);
    } catch (const ConfigError& e) {
        return e;
    }
    FAIL("expected a ConfigError for:\n" << yaml);
    throw; // unreachable: FAIL throws
}

} // namespace pooled::test
