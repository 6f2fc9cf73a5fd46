#!/bin/sh
# One piece of a study on a lent GPU machine (README, "Studies"): trains the arms named (all by
# default) of DESIGN into DIR for at most SECONDS (then checkpoints and stops, so the same
# command continues it), writes the report, and packs what the report needs — the plan, the
# arms' sweep.json and sweep.csv, study.md, study.json and the figures — into
# $OUT/study-piece.tgz (one file: the device tool brings back few). Plan pieces as whole arms:
# the rows are all that must travel between pieces; an arm cut short needs its run directories
# carried to continue.
#
# usage: scripts/study_piece.sh DESIGN DIR SECONDS [ARM,ARM...]
# Carry the release binary (target/release/bitgrok), and .gl with the Vulkan loader where the
# machine has none (the device README's recipe).
set -eu
design=$1
dir=$2
seconds=$3
arms=${4:-}
if [ -d .gl ]; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
bin=./target/release/bitgrok
$bin devices
status=0
timeout -s INT "$seconds" $bin study "$design" --out "$dir" ${arms:+--arms "$arms"} || status=$?
# 130 (or timeout's 124): stopped at the time limit with its checkpoints written.
$bin study-report "$dir" || true
cd "$dir"
tar czf "${OUT:-.}/study-piece.tgz" study_plan.json arms/*/sweep.json arms/*/sweep.csv \
    $(ls study.md study.json 2>/dev/null) $(ls -d figures 2>/dev/null)
exit $status
