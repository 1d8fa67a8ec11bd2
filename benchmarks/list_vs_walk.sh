#!/usr/bin/env bash
# Reading a scan list against walking the tree, for the report of one dataset: with the page cache warm (the
# metadata of every file already in memory: the best case for walking) and cold (the cache dropped before each
# run, as on a shared file system whose metadata is not in this node's memory: the case lists are for).
#
#   benchmarks/list_vs_walk.sh TREE FIND_LIST NCDU_EXPORT [RUNS]
#
# TREE holds fmriprep/ and work/ (benchmarks/generate.py); the lists are of TREE, made with
#   find TREE -printf '%y %s %b %T@ %D %i %n %p\0' > FIND_LIST
#   ncdu -e -x -o NCDU_EXPORT TREE
# Needs hyperfine and, for the cold runs, root (it writes /proc/sys/vm/drop_caches). Prints hyperfine's tables;
# the JSON exports (medians) go to list-vs-walk-{warm,cold}.json in the current folder.
set -euo pipefail
tree=$1 find_list=$2 ncdu_export=$3 runs=${4:-3}
report="fmriprep-cleanup report $tree/fmriprep --format json -q"
commands=(
  -n "du -s --apparent-size" "du -s --apparent-size $tree"
  -n "walking the tree" "$report"
  -n "from the find list" "$report --from-scan $find_list"
  -n "from the ncdu export" "$report --from-scan $ncdu_export"
)
hyperfine -N -w 1 -r "$runs" --export-json list-vs-walk-warm.json "${commands[@]}"
if [ -w /proc/sys/vm/drop_caches ]; then
  hyperfine -N -r "$runs" --prepare "sh -c 'sync; echo 3 > /proc/sys/vm/drop_caches'" \
    --export-json list-vs-walk-cold.json "${commands[@]}"
else
  echo "cold runs skipped: /proc/sys/vm/drop_caches is not writable (run as root)" >&2
fi
for command in "$report" "$report --from-scan $find_list" "$report --from-scan $ncdu_export"; do
  /usr/bin/time -f "peak RSS %M KiB: $command" $command > /dev/null
done
