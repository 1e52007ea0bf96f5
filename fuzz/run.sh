#!/usr/bin/env bash
# Runs each cargo-fuzz target for SECONDS (default 600) and prints one line per
# target: executions, crashes, corpus size. Needs the nightly toolchain and
# cargo-fuzz (`rustup toolchain install nightly && cargo install cargo-fuzz`).
#
#   fuzz/run.sh            # every target, 10 minutes each
#   fuzz/run.sh 60 dq_csv  # one target for a minute
#
# The committed seeds are in fuzz/seeds/<target>; what the fuzzer adds goes to
# fuzz/corpus/<target> (not committed), a crash to fuzz/artifacts/<target>.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-600}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(envelope canonical_json ledger_yaml allowed_signers dq_csv)
fi
cargo +nightly fuzz build -O >/dev/null
status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    log="artifacts/$t/last-run.log"
    set +e
    cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1
    code=$?
    set -e
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    crashes=$(find "artifacts/$t" -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' | wc -l)
    corpus=$(find "corpus/$t" -type f | wc -l)
    printf '%-16s %8ss  executions %-10s crashes %-3s corpus %-6s exit %s\n' \
        "$t" "$seconds" "$execs" "$crashes" "$corpus" "$code"
    if [ "$code" -ne 0 ] || [ "$crashes" -ne 0 ]; then
        status=1
        grep -m5 -E 'panicked|ERROR|SUMMARY' "$log" || true
    fi
done
exit $status
