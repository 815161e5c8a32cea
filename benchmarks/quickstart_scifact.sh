#!/usr/bin/env bash
# `rankkit quickstart` on the shared BEIR SciFact folder, dev split (issue 9): BM25, dense and hybrid
# over the full corpus (5,183 abstracts, `title text`), the 100 dev queries, nDCG@10, RR@10 and R@100.
# Writes benchmarks/results/$NAME.md (default quickstart_scifact) with the command, its wall time, the
# load average and the printed table. Output goes to $WORK (default work/$NAME, git-ignored). Arguments
# are passed on to `rankkit quickstart`.
#
#   benchmarks/quickstart_scifact.sh
#   NAME=quickstart_scifact-openvino-int8 benchmarks/quickstart_scifact.sh --backend openvino --quantize int8
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
DATA="${RANKKIT_DATA:-$REPO/../shared/data}/scifact"
NAME="${NAME:-quickstart_scifact}"
WORK="${WORK:-work/$NAME}"
RANKKIT="${RANKKIT:-$REPO/.venv/bin/rankkit}"
OUT="$REPO/benchmarks/results/$NAME.md"
[[ -f "$DATA/corpus.jsonl" ]] || { echo "missing $DATA/corpus.jsonl (set RANKKIT_DATA to the folder holding scifact/)" >&2; exit 1; }

command=(rankkit quickstart --data "$DATA" --split dev -o "$WORK" "$@")
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
start=$(date +%s)
table=$("$RANKKIT" "${command[@]:1}" 2>"$log") || { cat "$log" >&2; exit 1; }
seconds=$(( $(date +%s) - start ))
# --precision auto (the default) says once what it chose: bf16 where the CPU runs it natively, else fp32
precision=$(sed -n 's/^precision auto: \([a-z0-9]*\) .*/\1/p' "$log" | head -n 1)
echo "$table"
tmp="$OUT.tmp"
{
  echo "# rankkit quickstart on BEIR SciFact, dev split"
  echo
  echo "- command: \`${command[*]}\`"
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ); wall time ${seconds} s on $(nproc) CPUs; load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(grep -q avx512_bf16 /proc/cpuinfo && echo 'native bf16 (AVX512-BF16)' || echo 'no native bf16')"
  echo "- BM25 over \`title text\` (pyserini/Lucene), dense all-MiniLM-L6-v2 in ${precision:-fp32} (FAISS Flat; --precision auto says when it picks bf16), hybrid: z-score fusion, alpha 0.65 (the default)"
  echo
  echo '```'
  echo "$table"
  echo '```'
} > "$tmp"
mv "$tmp" "$OUT"
echo "wrote $OUT"
