#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and fuzzes each one for
# SECONDS (default 60), starting from the committed seed corpus. New inputs go
# to a scratch corpus; a crash leaves its input in build-fuzz/fuzz/ and fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_EACH=${1:-60}
BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}
command -v clang++-14 >/dev/null || apt-get install -y -q clang-14 libclang-rt-14-dev >/dev/null
CC=clang-14 CXX=clang++-14 cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPOOLED_FUZZ=ON -DPOOLED_TESTS=OFF >/dev/null
cmake --build "$BUILD_DIR" --target request_fuzz response_fuzz
for target in request response; do
    scratch="$BUILD_DIR/fuzz/corpus-$target"
    mkdir -p "$scratch"
    echo "fuzz: ${target}_fuzz for ${SECONDS_EACH}s"
    (cd "$BUILD_DIR/fuzz" && "./${target}_fuzz" -max_total_time="$SECONDS_EACH" -max_len=4096 \
        -print_final_stats=1 "corpus-$target" "../../tests/fuzz/corpus/$target" 2>&1 | tail -12)
done
