#!/usr/bin/env bash
# The test suite under AddressSanitizer and ThreadSanitizer, each in its own build folder.
#   Tests/sanitize.sh [address|thread ...]      (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
for s in "${@:-address thread}"; do
  for sanitizer in $s; do
    echo "== swift test --sanitize=$sanitizer"
    # TSan reports races in the test runner itself only when asked to halt; keep going and fail on any report.
    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" ASAN_OPTIONS="detect_leaks=0" \
      swift test --sanitize="$sanitizer" --scratch-path ".build-$sanitizer"
  done
done
