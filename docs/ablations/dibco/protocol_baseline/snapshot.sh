#!/bin/bash
# Copies the protocol's small result files (scores, configs, metrics, DONE markers) into the repo,
# laid out as the workdir, so a later session can restore them with `cp -r` and resume.
set -e
src=${1:-/work/protocol/baseline}; dst=${2:-$(cd "$(dirname "$0")" && pwd)}
mkdir -p "$dst"
cd "$src"
for f in report.md report.json pages.csv; do [ -f "$f" ] && cp "$f" "$dst/"; done
find . -path ./weights_cache -prune -o \( -name pages.csv -o -name summary.json -o -name DONE -o -name config.json -o -name metrics.jsonl \) -print \
  | grep -v "^./pages.csv$" | grep -v "/otsu/\|/sauvola/\|/su/\|/model/\|/samples/" | while read -r f; do
    run=$(echo "$f" | cut -d/ -f2)
    case "$run" in arg=*) [ -f "$run/DONE" ] || continue;; esac  # a run still training stays out
    mkdir -p "$dst/$(dirname "$f")"; cp "$f" "$dst/$f"; done
du -sh "$dst"
