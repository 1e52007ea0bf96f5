#!/bin/sh
# Demo gate workflow (POSIX sh): writes a production_gates_report.json the way
# a team's research workflow would, and fails when a gate fails.
# usage: gates.sh FACTOR TAG SHARPE_AT_1_5 SHARPE_AT_2_0
set -eu
factor=$1 tag=$2 s15=$3 s20=$4
out="gate_results/production_gates_${tag}"
mkdir -p "$out"
pass15=true; pass20=true; verdict=pass; code=0
awk "BEGIN{exit !($s15 < 0.5)}" && { pass15=false; verdict=fail; code=1; }
awk "BEGIN{exit !($s20 < 0.5)}" && { pass20=false; verdict=fail; code=1; }
for shard in 1 2 3 4; do
  echo "walk-forward shard $shard/4: factor=$factor fitted"
done
cat > "$out/production_gates_report.json" <<JSON
{
  "factor": "$factor",
  "strategy": "long_short_decile",
  "verdict": "$verdict",
  "metrics": {"sharpe": $s15, "annual_return": 0.084, "max_drawdown": -0.121, "turnover": 0.37},
  "gates": [
    {"name": "cost_1.5x", "cost_multiplier": 1.5, "passed": $pass15, "value": $s15, "threshold": 0.5, "reason": "net sharpe at 1.5x costs"},
    {"name": "cost_2.0x", "cost_multiplier": 2.0, "passed": $pass20, "value": $s20, "threshold": 0.5, "reason": "net sharpe at 2.0x costs"}
  ],
  "walk_forward": {"shards": 4, "passed": 4}
}
JSON
echo "gates: cost_1.5x=$pass15 cost_2.0x=$pass20 -> $verdict"
exit $code
