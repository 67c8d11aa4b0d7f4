// Catch2 entry point for the unit tests (tests/unit mirrors daemon/ folder by folder).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
