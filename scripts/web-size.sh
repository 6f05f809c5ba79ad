#!/usr/bin/env bash
# Download size of the demo: every file in dist/ raw and gzipped (-9), and the total.
set -euo pipefail
cd "$(dirname "$0")/../dist"
total=0; total_gz=0
printf '%-40s %12s %12s\n' file bytes gzipped
for f in $(find . -type f | sort); do
  raw=$(stat -c %s "$f"); gz=$(gzip -9 -c "$f" | wc -c)
  total=$((total + raw)); total_gz=$((total_gz + gz))
  printf '%-40s %12d %12d\n' "${f#./}" "$raw" "$gz"
done
printf '%-40s %12d %12d\n' total "$total" "$total_gz"
