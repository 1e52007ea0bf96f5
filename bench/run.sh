#!/usr/bin/env bash
# Benchmarks of `ledger run`, each side by side with its baseline in one script.
#
#   bench/run.sh            # all pairs
#   bench/run.sh big        # 1 GiB of output: ledger run vs the command redirected to a file
#   bench/run.sh fixed      # ledger run -- true vs git commit --allow-empty, same repository
#   bench/run.sh dq         # ledger dq on a generated 1 GiB CSV of 8 columns vs wc -l
#   bench/run.sh finalize   # finalize over a generated 10,000-run ledger vs git cat-file of every object
#   bench/run.sh pull       # ledger pull of one new run from a 10,000-run remote vs git fetch
#   bench/run.sh verify     # ledger verify of 10,000 runs vs ed25519 verify_strict of as many signatures, all cores
#   bench/run.sh log        # ledger log / status of 10,000 runs vs git log --oneline of the ledger ref
#
# Environment: RUNS (repetitions, default 5 for big, 4x that for fixed), FINALIZE_RUNS
# (ledger size for finalize, default 10000), SETTLE_SECONDS (wait after the finalize
# ledger's repack, default 65: see bench.py), BENCH_DIR
# (scratch directory, default a temp dir; needs ~2 GiB free for `big`).
# Prints median wall time, the ratio to the baseline and peak RSS of each side.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
cargo build --release --quiet --bin ledger --example ed25519_floor --example sha256_floor
exec python3 "$here/bench.py" "$PWD/target/release/ledger" "$@"
