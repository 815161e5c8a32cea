"""Peak memory and wall time of building the dl19 dense index (Flat) through the CLI.

    .venv/bin/python benchmarks/bench_build_memory.py

Each measurement is a fresh subprocess; its peak resident memory is the child's ru_maxrss as
os.wait4 reports it (tracemalloc would miss torch's and faiss' native allocations). Baselines, also
fresh subprocesses, show what is not the build's own: the interpreter, importing rankkit (its CLI,
torch, transformers, faiss) and loading the model. The build itself is

    rankkit index build <dl19>/collection.tsv --kind dense -o <tmp>/collection-dense --precision fp32 --overwrite

in fp32, the precision of the model baselines (BiEncoder's default; the CLI's default, auto, is bf16 on a
CPU with native bfloat16).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import dl19_dir, save_result

PYTHON = sys.executable
RANKKIT = str(Path(sys.executable).with_name("rankkit"))

IMPORT_ONLY = "import rankkit, rankkit.cli.app, torch, transformers, faiss"
LOAD_MODEL = (
    "import rankkit, rankkit.cli.app; from rankkit.encode.biencoder import BiEncoder; "
    "e = BiEncoder('default'); print(e.dimension)"
)
TOKENIZE_CORPUS = (
    "import sys, rankkit, rankkit.cli.app; from rankkit.encode.biencoder import BiEncoder; "
    "from rankkit.data.corpus import read_corpus; e = BiEncoder('default'); "
    "texts = [d.contents for d in read_corpus(sys.argv[1])]; "
    "ids = e.tokenizer(texts, truncation=True, max_length=e.max_length, return_attention_mask=False, "
    "return_token_type_ids=False)['input_ids']; print(sum(map(len, ids)))"
)
LOAD_AND_ENCODE = (
    "import rankkit, rankkit.cli.app; from rankkit.encode.biencoder import BiEncoder; "
    "e = BiEncoder('default'); e.encode(['warm up the model with one short text'])"
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=None, help="default: <dl19>/collection.tsv")
    parser.add_argument("--repeat", type=int, default=1, help="builds to run (each in a fresh subprocess)")
    parser.add_argument("--keep", action="store_true", help="keep the built index (printed path)")
    parser.add_argument("--name", default="build_memory")
    return parser.parse_args()


def sample_rss(pid: int, samples: list, stop: threading.Event, every: float = 0.25) -> None:
    """Append (seconds since start, RSS MiB) of process `pid` until `stop` is set (for the timeline)."""
    t0 = time.perf_counter()
    while not stop.is_set():
        try:
            with open(f"/proc/{pid}/status") as status:
                rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
            samples.append((time.perf_counter() - t0, rss / 1024))
        except (OSError, StopIteration, ValueError):
            pass
        stop.wait(every)


def measure(argv: list[str], env: dict | None = None) -> dict:
    """Run argv in a fresh subprocess; its wall time and peak RSS (MiB) as the kernel accounts it,
    and an RSS timeline sampled from /proc."""
    t0 = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    sampler = threading.Thread(target=sample_rss, args=(child.pid, samples, stop), daemon=True)
    sampler.start()
    # read output before waiting (no pipe deadlock); wait4 then reaps the child with its own rusage
    err_chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: err_chunks.append(child.stderr.read()), daemon=True)
    reader.start()
    out = child.stdout.read()
    reader.join()
    err = b"".join(err_chunks)
    stop.set()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if child.returncode != 0:
        sys.stderr.write(err.decode(errors="replace")[-3000:])
        raise SystemExit(f"failed ({child.returncode}): {' '.join(argv)}")
    return {
        "wall_s": wall,
        "max_rss_mib": usage.ru_maxrss / 1024,
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,
        "stdout": out.decode(errors="replace").strip()[-500:],
        "timeline": samples,
    }


def timeline_rows(samples: list[tuple[float, float]], points: int = 10) -> list[dict]:
    """The sampled RSS at `points` evenly spaced moments of the run, and where the peak was."""
    if not samples:
        return []
    end = samples[-1][0]
    rows = []
    for i in range(1, points + 1):
        moment = end * i / points
        t, rss = min(samples, key=lambda s: abs(s[0] - moment))
        rows.append({"at % of build": round(100 * i / points), "seconds": t, "RSS MiB": rss})
    t, rss = max(samples, key=lambda s: s[1])
    rows.append({"at % of build": f"peak ({100 * t / end:.0f}%)", "seconds": t, "RSS MiB": rss})
    return rows


def folder_size(folder: Path) -> tuple[int, dict[str, int]]:
    files = {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}
    return sum(files.values()), files


def main() -> None:
    args = parse_args()
    started = time.time()
    corpus = args.corpus or dl19_dir() / "collection.tsv"
    env = dict(os.environ)
    rows = []

    def add(step: str, command: str, result: dict, **extra) -> None:
        rows.append(
            {
                "step": step,
                "wall s": result["wall_s"],
                "peak RSS MiB": result["max_rss_mib"],
                "above model baseline MiB": None,
                "index on disk MiB": None,
                "CPU user s": result["user_s"],
                "CPU sys s": result["sys_s"],
                **extra,
                "command": command,
            }
        )
        print(f"{step:<34} {result['wall_s']:7.1f} s  peak RSS {result['max_rss_mib']:8.1f} MiB", flush=True)

    baselines = [
        ("python interpreter only", [PYTHON, "-c", "pass"]),
        ("import rankkit + torch + faiss", [PYTHON, "-c", IMPORT_ONLY]),
        ("import rankkit + load model", [PYTHON, "-c", LOAD_MODEL]),
        ("load model + encode one text", [PYTHON, "-c", LOAD_AND_ENCODE]),
        ("load model + tokenize whole corpus", [PYTHON, "-c", TOKENIZE_CORPUS, str(corpus)]),
    ]
    for step, argv in baselines:
        add(step, " ".join(argv[:2]) + f' "{argv[2]}"' + "".join(f" {a}" for a in argv[3:]), measure(argv, env))
    model_rss = next(r["peak RSS MiB"] for r in rows if r["step"] == "import rankkit + load model")
    for row in rows[3:]:
        row["above model baseline MiB"] = row["peak RSS MiB"] - model_rss
    timeline: list[dict] = []

    work = Path(tempfile.mkdtemp(prefix="rankkit-build-memory-"))
    size_rows = []
    try:
        for attempt in range(1, args.repeat + 1):
            folder = work / f"{corpus.stem}-dense"
            argv = [
                RANKKIT,
                "index",
                "build",
                str(corpus),
                "--kind",
                "dense",
                "-o",
                str(folder),
                "--precision",
                "fp32",
                "--overwrite",
            ]
            result = measure(argv, env)
            total, files = folder_size(folder)
            add(
                f"rankkit index build --kind dense (#{attempt})",
                "rankkit " + " ".join(argv[1:]),
                result,
                **{"above model baseline MiB": result["max_rss_mib"] - model_rss, "index on disk MiB": total / 2**20},
            )
            print(f"  {result['stdout']}")
            timeline = timeline_rows(result["timeline"])
            size_rows = [{"file": name, "bytes": size, "MiB": size / 2**20} for name, size in files.items()]
            size_rows.append({"file": "total", "bytes": total, "MiB": total / 2**20})
        docs = sum(1 for _ in open(corpus, encoding="utf-8"))
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    build = [r for r in rows if r["step"].startswith("rankkit index build")]
    notes = [
        f"corpus: {corpus} ({docs} passages, {corpus.stat().st_size / 2**20:.1f} MiB); Flat index, model 'default' "
        "(all-MiniLM-L6-v2), CPU.",
        "peak RSS = ru_maxrss of each fresh subprocess (os.wait4), which covers torch's and faiss' native memory.",
        "'above model baseline' = peak minus the peak of a process that only imports rankkit and loads the "
        "model: the memory the step itself needs (for the build: tokenized chunk, activations, embeddings, "
        "faiss index). 'tokenize whole corpus' does what BiEncoder.encode does first for a chunk (dl19 is one "
        "chunk: chunk_size 20,000).",
        f"build throughput: {docs / min(r['wall s'] for r in build):.1f} passages/s (wall, including start-up "
        "and model load).",
        "Wall times depend on other load on the machine (it was shared with other test runs).",
    ]
    save_result(
        args.name,
        rows,
        title="Building the dl19 dense index: peak memory and time",
        params={"corpus": str(corpus), "repeat": args.repeat},
        notes=notes,
        extra_tables={"Index on disk": size_rows, "RSS during the (last) build, sampled from /proc": timeline},
        started=started,
    )


if __name__ == "__main__":
    main()
