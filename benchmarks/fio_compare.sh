#!/usr/bin/env bash
# How close shoal-bench's raw-disk baseline comes to fio: runs `shoal-bench all --json` in a
# directory, then fio right after in the same directory at each row's baseline shape (the block
# size and queue depth the bench's sweep chose, from its JSON), O_DIRECT io_uring, the same bytes,
# REPEAT times, and prints the bench's raw MB/s beside fio's median. Then `shoal-bench smallread`
# (4 KiB random reads of the sequential object at qd 32) against fio's 4 KiB random reads at qd 32
# on a file of the same size (issue 13's reference for small reads).
#
#   benchmarks/fio_compare.sh [--size 1G] [--repeat 3] [--bench build/benchmarks/shoal-bench]
#                             [--dir /var/tmp/x] [--fio-seconds 10]
#                             (any further flags go to shoal-bench)
set -euo pipefail
size=1G repeat=3 bench=build/benchmarks/shoal-bench dir= seconds=10 extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --size) size=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --bench) bench=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --fio-seconds) seconds=$2; shift 2 ;;  # of the 4 KiB random-read reference
    *) extra+=("$1"); shift ;;
  esac
done
command -v fio > /dev/null || { echo "fio_compare: fio is not installed (apt-get install fio)" >&2; exit 2; }
command -v "$bench" > /dev/null || [[ -x "$bench" ]] || { echo "fio_compare: no $bench (build first)" >&2; exit 2; }
cleanup=
if [[ -z "$dir" ]]; then dir=$(mktemp -d /var/tmp/fio-compare-XXXXXX); cleanup=$dir; fi
trap '[[ -n "$cleanup" ]] && rm -rf "$cleanup"' EXIT
mkdir -p "$dir"

rows=$("$bench" all --size "$size" --repeat "$repeat" --dir "$dir/bench" --json "${extra[@]}")
echo "$rows" > "$dir/bench.json"

# fio_mbps RW BLOCK QD FILE_BYTES IO_BYTES -> median MB/s (1e6 bytes) of REPEAT runs
fio_mbps() {
  local rw=$1 bs=$2 qd=$3 file_bytes=$4 io_bytes=$5 runs=()
  for ((i = 0; i < repeat; i++)); do
    local extra_args=()
    # A new file each time, as the bench's raw write makes (fallocate, then O_DIRECT writes
    # into its unwritten extents); overwriting fio's earlier file would be a different test.
    [[ $rw == write ]] && { rm -f "$dir/fio.dat"; extra_args=(--end_fsync=1 --fallocate=native); }
    runs+=("$(fio --name=cmp --filename="$dir/fio.dat" --rw="$rw" --bs="$bs" --iodepth="$qd" \
      --ioengine=io_uring --direct=1 --size="$file_bytes" --io_size="$io_bytes" \
      --randrepeat=0 "${extra_args[@]}" --output-format=json |
      /usr/bin/python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]; d=j["write"] if j["write"]["io_bytes"] else j["read"]; print(d["bw_bytes"]/1e6)')")
  done
  printf '%s\n' "${runs[@]}" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'
}

printf '%-9s %10s %5s | %14s %12s | %8s\n' mode block qd "bench raw MB/s" "fio MB/s" "raw/fio"
while read -r line; do
  read -r mode bytes block qd raw <<< "$(/usr/bin/python3 -c '
import json,sys; j=json.loads(sys.argv[1])
print(j["mode"], j["bytes"], j["baseline_block_size"], j["baseline_queue_depth"], j["baseline_mbps"])' "$line")"
  case $mode in
    write) f=$(fio_mbps write "$block" "$qd" "$bytes" "$bytes") ;;
    read) fio --name=fill --filename="$dir/fio.dat" --rw=write --bs=4M --iodepth=16 \
            --ioengine=io_uring --direct=1 --size="$bytes" --output-format=terse > /dev/null
          f=$(fio_mbps read "$block" "$qd" "$bytes" "$bytes") ;;
    randread) # the bench's sample file is --sample-bytes (512 MiB by default) of samples
          sample_file=$(stat -c %s "$dir/bench/raw-samples.dat" 2> /dev/null || echo $((512 << 20)))
          fio --name=fill --filename="$dir/fio.dat" --rw=write --bs=4M --iodepth=16 \
            --ioengine=io_uring --direct=1 --size="$sample_file" --output-format=terse > /dev/null
          f=$(fio_mbps randread "$block" "$qd" "$sample_file" "$bytes") ;;
    *) continue ;;
  esac
  printf '%-9s %9sK %5s | %14.1f %12.1f | %8.3f\n' "$mode" $((block >> 10)) "$qd" "$raw" "$f" \
    "$(awk -v a="$raw" -v b="$f" 'BEGIN {print a / b}')"
done <<< "$rows"
# Small reads of a large object (issue 13: >= 0.7 x fio 4 KiB qd32): the engine's 4 KiB random
# reads of the `all` run's sequential object (--size) at qd 32, then fio's on the bench's raw
# file of the same size, REPEAT times each; medians.
small_args=(--reads 50000)
[[ " ${extra[*]} " == *" --reads "* ]] && small_args=()
# smallread takes no sample options (shoal-bench refuses options that do not apply to a mode).
small_extra=()
for ((i = 0; i < ${#extra[@]}; i++)); do
  case ${extra[i]} in
    --sample-size|--sample-bytes) i=$((i + 1)) ;;
    *) small_extra+=("${extra[i]}") ;;
  esac
done
small=$("$bench" smallread --size "$size" --qd 32 --repeat "$repeat" "${small_args[@]}" \
  --raw-shape engine --dir "$dir/bench" --json "${small_extra[@]}")
echo "$small" >> "$dir/bench.json"
engine_iops=$(/usr/bin/python3 -c 'import json,sys; print(round(json.loads(sys.argv[1])["ops_per_s"]))' "$small")
runs=()
for ((i = 0; i < repeat; i++)); do
  runs+=("$(fio --name=r4k --filename="$dir/bench/raw-seq.dat" --readonly --rw=randread --bs=4k \
    --iodepth=32 --ioengine=io_uring --direct=1 --runtime="$seconds" --time_based \
    --output-format=json |
    /usr/bin/python3 -c 'import json,sys; print(round(json.load(sys.stdin)["jobs"][0]["read"]["iops"]))')")
done
iops=$(printf '%s\n' "${runs[@]}" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
echo "fio randread 4K qd32 ($seconds s x $repeat: ${runs[*]}): $iops IOPS"
printf 'smallread 4K qd32: engine %s IOPS, %.3f x fio\n' "$engine_iops" \
  "$(awk -v a="$engine_iops" -v b="$iops" 'BEGIN {print a / b}')"
echo "bench rows: $dir/bench.json$([[ -n $cleanup ]] && echo ' (removed on exit)')"
