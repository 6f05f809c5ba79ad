#!/usr/bin/env bash
# Sourced by the experiment scripts: `record_machine DIR ARGS...` writes DIR/machine.txt (commit,
# CPU, start time, command) before a run, and `record_wall_time DIR` appends the wall time after.
record_machine() {
    local out="$1"; shift
    mkdir -p "$out"
    {
        echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates || echo ' (with local changes)')"
        echo "machine: $(nproc) cores,$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), $(free -g | awk '/Mem:/ {print $2}') GiB"
        echo "started: $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo "command: $*"
    } > "$out/machine.txt"
    record_started=$(date +%s)
}
record_wall_time() {
    echo "wall time: $(( ($(date +%s) - record_started) / 60 )) min" >> "$1/machine.txt"
    cat "$1/machine.txt"
}
