#!/usr/bin/env bash
# Fuzz the HTTP parser, form decoding and the request-to-decision path with libFuzzer.
#   Tests/fuzz/run.sh [SECONDS]     (default 600)
# Builds into .build-fuzz (kept out of git), starts from the committed corpus (the captured
# FreeSWITCH requests), writes new inputs to .build-fuzz/corpus and crashers to Tests/fuzz/crashers/
# (commit those: the test suite replays them).
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-600}"
swift build -c release --scratch-path .build-fuzz --product SwitchAuthFuzz \
  -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -DFUZZING
mkdir -p .build-fuzz/corpus Tests/fuzz/crashers
cp -n Tests/fuzz/corpus/* .build-fuzz/corpus/ 2>/dev/null || true
.build-fuzz/release/SwitchAuthFuzz .build-fuzz/corpus Tests/fuzz/corpus \
  -max_total_time="$seconds" -max_len=16384 -timeout=5 -rss_limit_mb=2048 \
  -artifact_prefix=Tests/fuzz/crashers/ -print_final_stats=1
