#!/usr/bin/env bash
# Runs the full benchmark profile with the release build and publishes it: the report's
# plots and results.json go to docs/bench-report/, and BENCHMARKS.md becomes the report
# with its plot links pointing there. Takes about 12 minutes on a 2-core machine; run it
# on an otherwise idle machine, since every figure is a comparison within the run.
set -euo pipefail
cd "$(dirname "$0")/.."
out=docs/bench-report
cargo build --release --locked --quiet
rm -rf "$out"
status=0
./target/release/causeway bench --profile full --out "$out" || status=$?
if [ ! -f "$out/report.md" ]; then
  echo "publish-benchmarks: no report was written" >&2
  exit 1
fi
{
  echo "<!-- Written by scripts/publish-benchmarks.sh from $out/report.md; do not edit by hand. -->"
  echo
  echo "Reproduce with \`make benchmarks-md\` (or \`cargo run --release -- bench --profile full --out DIR\`)."
  echo "Scenarios: [loadtests/scenarios/](loadtests/scenarios/); bounds: [loadtests/thresholds.yaml](loadtests/thresholds.yaml);"
  echo "raw results: [$out/results.json]($out/results.json)."
  echo
  sed -E "s#\]\(([A-Za-z0-9._-]+\.svg)\)#](${out}/\1)#g" "$out/report.md"
} > BENCHMARKS.md
rm "$out/report.md"
echo "publish-benchmarks: BENCHMARKS.md and $out/ written (suite exit $status)"
exit "$status"
