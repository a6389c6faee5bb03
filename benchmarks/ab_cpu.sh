#!/usr/bin/env bash
# A/B of two shoal-bench binaries on this machine: runs each row's command with binary A, then
# B, alternating, REPEAT times; prints per row the median throughput figure of each (the
# engine's, from --json) and the median CPU-seconds (user + sys of the bench and its rank
# processes, /usr/bin/time) per GiB moved or per 1,000 metadata ops, and B/A ratios.
#
#   benchmarks/ab_cpu.sh A_BENCH B_BENCH [REPEAT=3]
# The baselines each run also measures (raw disk, UCX) cost the same in A and B; they are
# inside the CPU figure, so a B/A CPU ratio understates a difference in shoal's own share.
set -euo pipefail
a="$1"; b="$2"; repeat="${3:-3}"
rows=(
  "all|all --size 1G --repeat 1 --reads 4000 --sample-bytes 256M|2"
  "write-2|write --ranks 2 --size 1G --repeat 1|1"
  "read-2|read --ranks 2 --size 1G --repeat 1|1"
  "remote-read-2|remote-read --ranks 2 --size 1G --repeat 1|1"
  "meta-4|meta --ranks 4 --files 20000 --stats 40000 --repeat 1|60"
  "ckpt-4|ckpt --ranks 4 --size 512M --repeat 1|1"
)
median() { sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
printf "%-14s %12s %12s %7s | %10s %10s %7s\n" row "A mbps|ops" "B mbps|ops" "B/A" "A cpu/u" "B cpu/u" "B/A"
for row in "${rows[@]}"; do
  IFS='|' read -r name args units <<<"$row"
  declare -A perf cpu
  perf=([A]="" [B]=""); cpu=([A]="" [B]="")
  for ((i = 0; i < repeat; i++)); do
    for side in A B; do
      bin=$a; [ "$side" = B ] && bin=$b
      out=$( { /usr/bin/time -f "CPU %U %S" "$bin" $args --json 2>&1 1>&3; } 3>&1 )
      c=$(echo "$out" | awk '/^CPU/ {print $2 + $3}')
      # The first row's engine figure: MB/s, or ops/s where a row has no MB/s.
      first=$(echo "$out" | grep '"mode"' | head -1)
      p=$(echo "$first" | sed -E 's/.*"mbps":([0-9.]+).*/\1/')
      if [ "$p" = "0.0" ] || [ "$p" = "0" ]; then
        p=$(echo "$first" | sed -E 's/.*"ops_per_s":([0-9.]+).*/\1/')
      fi
      perf[$side]+="$p"$'\n'; cpu[$side]+="$(awk -v c="$c" -v u="$units" 'BEGIN {print c / u}')"$'\n'
    done
  done
  pa=$(printf "%s" "${perf[A]}" | median); pb=$(printf "%s" "${perf[B]}" | median)
  ca=$(printf "%s" "${cpu[A]}" | median); cb=$(printf "%s" "${cpu[B]}" | median)
  printf "%-14s %12.1f %12.1f %7.3f | %10.3f %10.3f %7.3f\n" "$name" "$pa" "$pb" \
    "$(awk -v x="$pb" -v y="$pa" 'BEGIN {print x / y}')" "$ca" "$cb" \
    "$(awk -v x="$cb" -v y="$ca" 'BEGIN {print x / y}')"
done
echo "cpu/u: CPU-seconds per GiB moved (all: 1 GiB written + 1 GiB read = 2; ckpt: 512 MiB saved + restored = 1) or per 1,000 ops (meta: 20,000 creates + 40,000 stats = 60)"
