#!/usr/bin/env bash
# Effectiveness on TREC DL 2019 (the dl19 passage subset in ../shared/data/dl19), through the CLI only:
# BM25, dense (all-MiniLM-L6-v2 in fp32, Flat) and hybrid (RRF of both) runs at depth 1000, evaluated with
# nDCG@10, R(rel=2)@100 and R@100. Writes benchmarks/results/dl19_effectiveness.json (from `rankkit eval`)
# and benchmarks/results/dl19_effectiveness.md (the table and the exact commands).
#
#   benchmarks/dl19_effectiveness.sh
#   RANKKIT_DATA=/path/to/data WORK=/tmp/somewhere benchmarks/dl19_effectiveness.sh
#   REUSE=1 benchmarks/dl19_effectiveness.sh   # keep indexes already built in $WORK by an earlier run
#
# Indexes and runs go to $WORK (default /tmp/rankkit-dl19), not into the repository.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
DATA_ROOT="${RANKKIT_DATA:-$REPO/../shared/data}"
DATA="$DATA_ROOT/dl19"
WORK="${WORK:-/tmp/rankkit-dl19}"
RANKKIT="${RANKKIT:-$REPO/.venv/bin/rankkit}"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
RESULTS="$REPO/benchmarks/results"
K=1000

for f in collection.tsv queries.tsv qrels.txt; do
  [[ -f "$DATA/$f" ]] || { echo "missing $DATA/$f (set RANKKIT_DATA to the folder holding dl19/)" >&2; exit 1; }
done
mkdir -p "$WORK/indexes" "$WORK/runs" "$RESULTS"
LOG="$WORK/commands.tsv"   # seconds<TAB>arguments separated by \x1f, one line per step, for the report
: > "$LOG"

step() {  # run a command, echo it, and log it (arguments kept apart, for exact quoting) with its wall time
  echo "+ $*" >&2
  local start end IFS=$'\x1f'
  start=$(date +%s.%N)
  "$@"
  end=$(date +%s.%N)
  printf '%s\t%s\n' "$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", e - s }')" "$*" >> "$LOG"
}

build() {  # step, unless REUSE=1 and the index folder $1 is already there (logged as reused, with its date)
  local folder="$1" created IFS=$'\x1f'
  shift
  if [[ "${REUSE:-0}" == 1 && -f "$folder/manifest.json" ]]; then
    created=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["created"])' "$folder/manifest.json")
    echo "reusing $folder (built $created)" >&2
    printf 'reused, built %s\t%s\n' "$created" "$*" >> "$LOG"
  else
    step "$@"
  fi
}

build "$WORK/indexes/dl19-bm25" \
  "$RANKKIT" index build "$DATA/collection.tsv" --kind bm25 -o "$WORK/indexes/dl19-bm25" --overwrite
build "$WORK/indexes/dl19-dense" \
  "$RANKKIT" index build "$DATA/collection.tsv" --kind dense -o "$WORK/indexes/dl19-dense" --precision fp32 --overwrite

step "$RANKKIT" search --index "$WORK/indexes/dl19-bm25" --queries "$DATA/queries.tsv" -k "$K" \
  --tag bm25 -o "$WORK/runs/bm25.trec"
step "$RANKKIT" search --index "$WORK/indexes/dl19-dense" --queries "$DATA/queries.tsv" -k "$K" \
  --precision fp32 --tag dense -o "$WORK/runs/dense.trec"
step "$RANKKIT" search --index "$WORK/indexes/dl19-bm25" --index "$WORK/indexes/dl19-dense" --fusion rrf \
  --queries "$DATA/queries.tsv" -k "$K" --precision fp32 --tag hybrid -o "$WORK/runs/hybrid.trec"

step "$RANKKIT" eval "$WORK/runs/bm25.trec" "$WORK/runs/dense.trec" "$WORK/runs/hybrid.trec" "$DATA/qrels.txt" \
  -m nDCG@10 -m "R(rel=2)@100" -m "R@100" --json "$RESULTS/dl19_effectiveness.json"

# The Markdown report: the measures table, the paired comparisons, and the commands that produced them.
"$PYTHON" - "$RESULTS/dl19_effectiveness.json" "$LOG" "$RESULTS/dl19_effectiveness.md" "$DATA" "$WORK" <<'EOF'
import json, os, platform, shlex, sys, time
sys.path.insert(0, os.path.join(os.getcwd(), "benchmarks"))
from common import markdown_table, versions
from rankkit.data.files import atomic_write

json_path, log_path, md_path, data, work = sys.argv[1:]
report = json.load(open(json_path))
runs = report["runs"]
measures = list(next(iter(runs.values()))["aggregate"])
rows = [{"run": name, **{m: float(r["aggregate"][m]) for m in measures},
         "queries": len(r["per_query"][measures[0]]),  # judged queries; those missing from the run count 0
         "missing from run": len(r["missing_queries"])}
        for name, r in runs.items()]
comparisons = [{k: (float(v) if isinstance(v, float) else v) for k, v in c.items()} for c in report["comparisons"]]
short = lambda text: text.replace(os.getcwd() + "/", "")
steps = []
for line in open(log_path):
    if line.strip():
        seconds, args = line.rstrip("\n").split("\t", 1)
        steps.append((seconds, shlex.join(short(a) for a in args.split("\x1f"))))
parts = [
    "# TREC DL 2019 (dl19 subset): effectiveness through the rankkit CLI", "",
    f"- data: {data} (collection.tsv, queries.tsv, qrels.txt); work folder {work}",
    f"- date: {time.strftime('%Y-%m-%dT%H:%M:%S%z')}; machine: {platform.node()}, {os.cpu_count()} CPUs",
    "- versions: " + ", ".join(f"{k} {v}" for k, v in versions().items() if v),
    "- runs: depth 1000; dense = packaged all-MiniLM-L6-v2 in fp32 (--precision fp32), FAISS Flat; "
    "hybrid = RRF (k=60, weights 1) of BM25 and dense; BM25 k1=0.9, b=0.4", "",
    markdown_table(rows), "",
]
if comparisons:
    parts += ["## Paired comparisons against the first run (t-test over queries)", "", markdown_table(comparisons), ""]
parts += ["## Commands", "", "Run from the repository root (wall seconds per step on the left):", "", "```bash"]
parts += [f"# {seconds}" + (" s" if seconds[:1].isdigit() else " (REUSE=1: index kept from an earlier run)")
          + f"\n{cmd}" for seconds, cmd in steps]
parts += ["```", "", f"Raw figures (per query too): `{short(json_path)}`.", ""]
with atomic_write(md_path) as out:
    out.write("\n".join(parts))
print("\n".join(parts))
EOF
echo "wrote $RESULTS/dl19_effectiveness.json and $RESULTS/dl19_effectiveness.md" >&2
