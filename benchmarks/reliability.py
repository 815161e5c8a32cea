"""Reliability table for issue 13: runs every CLI, data-loss and index row of the issue with the
installed `rankkit` (a subprocess each, on the bundled sample and tiny inputs), records the exit
status and the message it now gives, then fuzzes every reader (tests/test_fuzz_readers.py) and
counts inputs and crashes. Nothing here is typed by hand: each row is what the command printed.

    flock /tmp/rankkit-cpu.lock .venv/bin/python benchmarks/reliability.py [--fuzz-examples 500]
    .venv/bin/python benchmarks/reliability.py --only disk-full,second-pass   # those rows, printed, not saved

Writes benchmarks/results/reliability.json and .md. The disk-full rows fill a real disk: a small
tmpfs in a private mount namespace (`unshare -rm`; skipped where the kernel does not allow it). A few minutes on 2 cores (the MiniLM model
encodes the 80-passage sample; two short training runs; one JVM per BM25 command).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from common import REPO_ROOT, save_result

from rankkit.data.collection import SAMPLE_DIR
from rankkit.encode.models import resolve_model_dir
from rankkit.index.manifest import Manifest

RANKKIT = str(Path(sys.executable).absolute().with_name("rankkit"))
SAMPLE = {name: str(SAMPLE_DIR / name) for name in ("collection.tsv", "queries.tsv", "qrels.txt")}
ROWS: list[dict] = []


class Workspace:
    """A scratch folder; its path is written as $W in the table."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="rankkit-reliability-"))

    def __truediv__(self, name: str) -> Path:
        return self.root / name

    def __str__(self) -> str:
        return str(self.root)

    def clean(self, text: str) -> str:
        return text.replace(str(self.root), "$W").replace(str(REPO_ROOT) + "/", "")


def rankkit(*args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """`rankkit ARGS` with stdout and stderr piped (so stdout is not a terminal)."""
    return subprocess.run(
        [RANKKIT, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
        env={**os.environ, "COLUMNS": "100"},
    )


def message(result: subprocess.CompletedProcess) -> str:
    """The error (or warning) a user sees, on one line: rankkit's 'error:' line, or Click's usage
    error without its panel."""
    text = result.stderr
    if "Traceback" in text or "Traceback" in result.stdout:
        return "TRACEBACK: " + " ".join(text.strip().splitlines()[-1:])
    flat = " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())
    for marker in ("error:", "Error ", "warning:"):
        if marker in flat:
            return flat[flat.index(marker) :]
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    return f"(no error) {lines[-1]}" if lines else "(no output)"


def row(group: str, case: str, result: subprocess.CompletedProcess, ws: Workspace, check: str = "") -> None:
    entry = {
        "group": group,
        "input": case,
        "exit": result.returncode,
        "traceback": "Traceback" in result.stderr,
        "message": ws.clean(message(result))[:400],
        "check": check,
    }
    ROWS.append(entry)
    print(f"[{entry['exit']}] {case}: {entry['message'][:160]} {check}", flush=True)


def unchanged(folder: Path, before: dict[str, bytes]) -> str:
    now = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    return "folder unchanged" if now == before else "FOLDER CHANGED"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


# --- set-up --------------------------------------------------------------------------------------


def build_indexes(ws: Workspace) -> tuple[Path, Path]:
    for kind in ("bm25", "dense"):
        result = rankkit("index", "build", SAMPLE["collection.tsv"], "--kind", kind, "-o", ws / "indexes" / kind)
        assert result.returncode == 0, result.stderr
    return ws / "indexes" / "bm25", ws / "indexes" / "dense"


def write_runs(ws: Workspace, bm25: Path) -> tuple[Path, Path]:
    for k in (10, 50):
        result = rankkit(
            "search",
            "--index",
            bm25,
            "--queries",
            SAMPLE["queries.tsv"],
            "-o",
            ws / f"bm25.top{k}.trec",
            "-k",
            k,
            "--tag",
            "bm25",
        )
        assert result.returncode == 0, result.stderr
    return ws / "bm25.top10.trec", ws / "bm25.top50.trec"


def mine_set(ws: Workspace, run50: Path) -> Path:
    result = rankkit(
        "mine",
        "--queries",
        SAMPLE["queries.tsv"],
        "--qrels",
        SAMPLE["qrels.txt"],
        "--corpus",
        SAMPLE["collection.tsv"],
        "--run",
        run50,
        "--max-rank",
        50,
        "--count",
        4,
        "-o",
        ws / "mined.jsonl",
    )
    assert result.returncode == 0, result.stderr
    return ws / "mined.jsonl"


def train_args(ws: Workspace, mined: Path, output: Path, *extra: str | int) -> list[str | Path | int]:
    return [
        "train",
        "biencoder",
        "--mined",
        mined,
        "--corpus",
        SAMPLE["collection.tsv"],
        "-o",
        output,
        "--batch-size",
        4,
        "--negatives",
        2,
        *extra,
    ]


def killed_during(args: list, appears: Callable[[], bool], timeout: float = 300) -> None:
    """Start `rankkit ARGS`, SIGKILL it as soon as `appears()` holds."""
    process = subprocess.Popen(
        [RANKKIT, *map(str, args)], cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + timeout
    while not appears() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()


# --- the rows ------------------------------------------------------------------------------------


def data_loss_rows(ws: Workspace, mined: Path) -> None:
    data = ws / "data"
    data.mkdir()
    shutil.copy(SAMPLE["collection.tsv"], data / "collection.tsv")
    before = snapshot(data)
    result = rankkit("index", "build", data / "collection.tsv", "--kind", "bm25", "-o", data, "--overwrite")
    row(
        "data loss",
        "index build -o DIR --overwrite, DIR the folder holding the corpus",
        result,
        ws,
        unchanged(data, before),
    )

    other = ws / "thesis"
    other.mkdir()
    (other / "thesis.tex").write_text("years of work\n")
    before = snapshot(other)
    result = rankkit(*train_args(ws, mined, other, "--max-steps", 1, "--overwrite"))
    row("data loss", "train -o DIR --overwrite, DIR holding other files", result, ws, unchanged(other, before))

    trained = ws / "trained"
    result = rankkit(*train_args(ws, mined, trained, "--max-steps", 1))
    assert result.returncode == 0
    weights = trained / "model" / "model.safetensors"
    row(
        "data loss",
        f"train: mode of model/model.safetensors (umask {os.umask(os.umask(0)):03o})",
        result,
        ws,
        f"mode {weights.stat().st_mode & 0o777:03o}",
    )
    model_before = snapshot(trained / "model")
    result = rankkit(*train_args(ws, mined, trained, "--max-steps", 1, "--overwrite", "--lr", "nan"))
    row(
        "data loss",
        "train --overwrite --lr nan over a trained model",
        result,
        ws,
        "model " + unchanged(trained / "model", model_before),
    )
    result = rankkit(
        *train_args(
            ws,
            mined,
            trained,
            "--max-steps",
            1,
            "--overwrite",
            "--dev-run",
            ws / "missing.trec",
            "--dev-queries",
            SAMPLE["queries.tsv"],
            "--dev-qrels",
            SAMPLE["qrels.txt"],
        )
    )
    row(
        "data loss",
        "train --overwrite over a trained model, failing after the options parse (missing dev run)",
        result,
        ws,
        "model " + unchanged(trained / "model", model_before),
    )

    sentiment_rows(ws)
    concurrent_rows(ws, mined)

    resumed = ws / "resumed"
    args = train_args(ws, mined, resumed, "--max-steps", 6, "--checkpoint-every", 1)
    killed_during(args, lambda: any((resumed / "checkpoints").glob("step-2")))
    checkpoint = sorted((resumed / "checkpoints").glob("step-*"))
    result = rankkit(
        *train_args(
            ws, mined, resumed, "--max-steps", 6, "--checkpoint-every", 1, "--lr", "1e-4", "--seed", 1, "--negatives", 3
        )
    )
    row(
        "data loss",
        f"SIGKILL at {checkpoint[-1].name if checkpoint else '?'}, rerun with other --lr --seed --negatives",
        result,
        ws,
    )
    result = rankkit(
        "train", "reranker", *train_args(ws, mined, resumed, "--max-steps", 6, "--checkpoint-every", 1)[2:]
    )
    row("data loss", "the same checkpoint resumed by another trainer (reranker)", result, ws)
    state = sorted((resumed / "checkpoints").glob("step-*"))[-1] / "state.pt"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    result = rankkit(*args)
    row("data loss", "a truncated checkpoints/step-N/state.pt", result, ws)


def concurrent_rows(ws: Workspace, mined: Path) -> None:
    """Two runs into one output at once: the second is refused while the first holds the lock."""
    reviews = REPO_ROOT / "rankkit" / "sentiment" / "sample" / "reviews.csv"
    large = ws / "collection-x30.tsv"  # encoding takes long enough for a second run to start meanwhile
    lines = Path(SAMPLE["collection.tsv"]).read_text().splitlines()
    large.write_text("".join(f"r{copy}-{line}\n" for copy in range(30) for line in lines))
    for case, output, args in (
        ("train", ws / "busy-train", train_args(ws, mined, ws / "busy-train", "--max-steps", 200, "--overwrite")),
        (
            "index build",
            ws / "busy-index",
            ["index", "build", large, "--kind", "dense", "-o", ws / "busy-index", "--overwrite"],
        ),
        (
            "sentiment train",
            ws / "busy-sentiment",
            ["sentiment", "train", "--reviews", reviews, "--rating-column", "rating", "--method", "transformer"]
            + ["--epochs", "20", "-o", ws / "busy-sentiment", "--overwrite"],
        ),
    ):
        lock = output.with_name(f".{output.name}.lock")
        first = subprocess.Popen(
            [RANKKIT, *map(str, args)], cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.time() + 120
        while not lock.exists() and first.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        result = rankkit(*args)
        first.send_signal(signal.SIGTERM)
        status = first.wait()
        check = f"first run: exit {status} on SIGTERM, lock file {'LEFT' if lock.exists() else 'gone'}"
        row("concurrency", f"{case} -o DIR twice at once (the second while the first runs)", result, ws, check)


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def sentiment_rows(ws: Workspace) -> None:
    """sentiment train -o DIR follows the rule of train, index build and export beir."""
    reviews = REPO_ROOT / "rankkit" / "sentiment" / "sample" / "reviews.csv"

    def sentiment(output: Path, *extra: str) -> subprocess.CompletedProcess:
        args = ["--reviews", reviews, "--rating-column", "rating", "--method", "tfidf", "-o", output, *extra]
        return rankkit("sentiment", "train", *args)

    project = ws / "project"
    (project / "model").mkdir(parents=True)
    (project / "model" / "weights.bin").write_bytes(b"my own model")
    (project / "sentiment_config.json").write_text("my own settings")
    (project / "thesis.tex").write_text("years of work\n")
    before = tree(project)
    for case, output in (
        ("sentiment train -o DIR --overwrite, DIR holding its own model/ and sentiment_config.json", project),
        ("sentiment train -o LINK --overwrite, LINK a symlink to that folder", ws / "link"),
    ):
        (ws / "link").unlink(missing_ok=True)
        (ws / "link").symlink_to(project)
        result = sentiment(output, "--overwrite")
        row("data loss", case, result, ws, "folder unchanged" if tree(project) == before else "FOLDER CHANGED")
    notes = ws / "notes"
    notes.mkdir()
    (notes / "notes.txt").write_text("mine\n")
    result = sentiment(notes)
    row(
        "data loss",
        "sentiment train -o DIR (no --overwrite), DIR holding other files",
        result,
        ws,
        "folder unchanged" if tree(notes) == {"notes.txt": b"mine\n"} else "FOLDER CHANGED",
    )
    own = ws / "sentiment"
    assert sentiment(own).returncode == 0
    result = sentiment(own, "--overwrite", "--seed", "3")
    saved = json.loads((own / "sentiment_config.json").read_text()).get("seed") if result.returncode == 0 else None
    row("data loss", "sentiment train --overwrite over its own earlier output", result, ws, f"seed now {saved}")


def cli_rows(ws: Workspace, bm25: Path, dense: Path, run10: Path, run50: Path) -> None:
    bom = ws / "bom.tsv"
    bom.write_bytes(b"\xef\xbb\xbf" + Path(SAMPLE["collection.tsv"]).read_bytes())
    rankkit("index", "build", bom, "--kind", "bm25", "-o", ws / "indexes" / "bom")
    first_text = Path(SAMPLE["collection.tsv"]).read_text().splitlines()[0].split("\t", 1)[1]
    result = rankkit("search", "--index", ws / "indexes" / "bom", "--query", first_text[:200], "-k", 1)
    top = re.search(r"│\s+1\s+│\s+(\S+)", result.stdout)
    row(
        "cli",
        "corpus TSV with a UTF-8 BOM: index build, then search the first passage's text",
        result,
        ws,
        f"top docid {top.group(1) if top else '?'!r}",
    )

    queries_bom = ws / "queries-bom.tsv"
    queries_bom.write_bytes(b"\xef\xbb\xbf" + Path(SAMPLE["queries.tsv"]).read_bytes())
    result = rankkit("search", "--index", bm25, "--queries", queries_bom, "-o", ws / "bom.trec", "-k", 5)
    first_qid = (ws / "bom.trec").read_text().split()[0] if (ws / "bom.trec").exists() else "?"
    result_eval = rankkit("eval", ws / "bom.trec", SAMPLE["qrels.txt"])
    row("cli", "queries.tsv with a BOM: search, then eval", result_eval, ws, f"first qid {first_qid!r}")

    folder = ws / "a-folder"
    folder.mkdir()
    for case, args in (
        ("search -o DIR", ["search", "--index", bm25, "--queries", SAMPLE["queries.tsv"], "-o", folder]),
        (
            "mine -o DIR",
            [
                "mine",
                "--queries",
                SAMPLE["queries.tsv"],
                "--qrels",
                SAMPLE["qrels.txt"],
                "--corpus",
                SAMPLE["collection.tsv"],
                "--run",
                run50,
                "-o",
                folder,
            ],
        ),
        ("eval --json DIR", ["eval", run50, SAMPLE["qrels.txt"], "--json", folder]),
    ):
        row("cli", f"{case}, DIR an existing folder", rankkit(*args), ws)

    qrels = ws / "qrels-huge.txt"
    qrels.write_text(Path(SAMPLE["qrels.txt"]).read_text() + "q01 0 s002 99999999999\n")
    row("cli", "qrels with a grade too large for an int", rankkit("eval", run50, qrels), ws)
    for value in ("nan", "inf"):
        run = ws / f"run-{value}.trec"
        lines = run50.read_text().splitlines()
        fields = lines[3].split()
        fields[4] = value
        run.write_text("\n".join([*lines[:3], " ".join(fields), *lines[4:]]) + "\n")
        row("cli", f"a run with {value} scores: eval", rankkit("eval", run, SAMPLE["qrels.txt"]), ws)
    mine_args = [
        "mine",
        "--queries",
        SAMPLE["queries.tsv"],
        "--qrels",
        SAMPLE["qrels.txt"],
        "--corpus",
        SAMPLE["collection.tsv"],
        "-o",
        ws / "m.jsonl",
    ]
    row(
        "cli",
        "mine --sampling simans over candidates with NaN scores (a run with nan)",
        rankkit(*mine_args, "--run", ws / "run-nan.trec", "--sampling", "simans", "--max-rank", 50),
        ws,
    )
    row(
        "cli",
        "mine --min-rank 50 --max-rank 10",
        rankkit(*mine_args, "--run", run50, "--min-rank", 50, "--max-rank", 10),
        ws,
    )
    result = rankkit(*mine_args, "--run", run50, "--min-rank", 60, "--max-rank", 100)
    stats = json.loads((ws / "m.stats.json").read_text()) if (ws / "m.stats.json").exists() else {}
    row(
        "cli",
        "mine --run RUN (depth 50) --min-rank 60 --max-rank 100",
        result,
        ws,
        f"stats window_beyond_depth={stats.get('window_beyond_depth')}, negatives={stats.get('negatives')}",
    )
    for count in ("0", "-3"):
        row("cli", f"mine --count {count}", rankkit(*mine_args, "--run", run50, "--count", count), ws)

    mined = ws / "mined.jsonl"
    row(
        "cli",
        "train --negatives 8 on a MinedSet of 4 negatives per query",
        rankkit(*train_args(ws, mined, ws / "t-negatives", "--max-steps", 1, "--negatives", 8)),
        ws,
    )
    reviews = ws / "reviews-bom.csv"
    reviews.write_bytes(b"\xef\xbb\xbf" + (REPO_ROOT / "rankkit" / "sentiment" / "sample" / "reviews.csv").read_bytes())
    result = rankkit(
        "sentiment", "train", "--reviews", reviews, "--rating-column", "rating", "--method", "tfidf", "-o", ws / "s-bom"
    )
    usable = re.search(r"(\d+) usable rows", result.stdout)
    row(
        "cli",
        "sentiment train on a CSV with a UTF-8 BOM",
        result,
        ws,
        f"usable rows {usable.group(1) if usable else '?'}",
    )
    for option, value in (("--batch-size", "0"), ("--lr", "nan"), ("--grad-accum", "0")):
        row("cli", f"train {option} {value}", rankkit(*train_args(ws, mined, ws / "t", option, value)), ws)
    row("cli", "search --k1 -1 (BM25)", rankkit("search", "--index", bm25, "-q", "stars", "--k1", "-1"), ws)
    row(
        "cli",
        "hybrid search --weight -1",
        rankkit("search", "--index", bm25, "--index", dense, "-q", "stars", "--weight", "1", "--weight", "-1"),
        ws,
    )

    spaced = ws / "spaced.tsv"
    spaced.write_text(Path(SAMPLE["collection.tsv"]).read_text() + "D 901\ta passage whose id has a space\n")
    row(
        "cli",
        "a docid with a space (D 901<TAB>text): index build",
        rankkit("index", "build", spaced, "--kind", "bm25", "-o", ws / "indexes" / "spaced"),
        ws,
    )

    swapped = ws / "minilm-swapped"
    shutil.copytree(resolve_model_dir("default"), swapped)
    tokenizer = json.loads((swapped / "tokenizer.json").read_text())
    table = tokenizer["model"]["vocab"]
    first, second = [word for word, index in table.items() if index in (2000, 2001)]
    table[first], table[second] = table[second], table[first]
    (swapped / "tokenizer.json").write_text(json.dumps(tokenizer))
    vocab = (swapped / "vocab.txt").read_text().splitlines()
    vocab[2000], vocab[2001] = vocab[2001], vocab[2000]
    (swapped / "vocab.txt").write_text("\n".join(vocab) + "\n")
    row(
        "cli",
        "--model MiniLM with two vocabulary entries swapped (search a MiniLM index)",
        rankkit("search", "--index", dense, "-q", "stars", "--model", swapped),
        ws,
    )

    rerank = [
        "rerank",
        "--run",
        run50,
        "--queries",
        SAMPLE["queries.tsv"],
        "--corpus",
        SAMPLE["collection.tsv"],
        "--model",
        "default",
        "-o",
        ws / "reranked.trec",
        "--depth",
        10,
    ]
    row("cli", "rerank --model default (a bi-encoder: no trained scoring head)", rankkit(*rerank), ws)
    row("cli", "rerank --model default --allow-new-head", rankkit(*rerank, "--allow-new-head"), ws)

    row(
        "cli",
        "eval of runs of different depths (top-10 against top-50) at R@50",
        rankkit("eval", run10, run50, SAMPLE["qrels.txt"], "-m", "R@50", "-m", "nDCG@10"),
        ws,
    )
    long_run = ws / "run.bm25-with-a-long-descriptive-system-name-k1-0.9-b-0.4.trec"
    shutil.copy(run50, long_run)
    result = rankkit(
        "eval",
        long_run,
        SAMPLE["qrels.txt"],
        "-m",
        "AP(rel=2)",
        "-m",
        "R(rel=2)@1000",
        "-m",
        "nDCG@10",
        "-m",
        "P(rel=2)@5",
    )
    whole = long_run.name in result.stdout and "R(rel=2)@1000" in result.stdout and "…" not in result.stdout
    row("cli", "rankkit eval ... | cat (stdout piped)", result, ws, "names whole" if whole else "NAMES CUT")

    stale = ws / "indexes"
    killed_during(
        ["index", "build", SAMPLE["collection.tsv"], "--kind", "dense", "-o", stale / "killed"],
        lambda: any(stale.glob(".killed.*.tmp")),
    )
    left = len(list(stale.glob(".killed.*.tmp")))
    result = rankkit("index", "build", SAMPLE["collection.tsv"], "--kind", "bm25", "-o", stale / "killed")
    row(
        "cli",
        "kill -9 during index build, then build the same name again",
        result,
        ws,
        f"temporaries left by the kill: {left}; after the next build: {len(list(stale.glob('.killed.*.tmp')))}",
    )


def index_rows(ws: Workspace, bm25: Path, dense: Path) -> None:
    row("index", "verify a good dense index", rankkit("index", "verify", dense), ws)
    row("index", "verify a good BM25 index", rankkit("index", "verify", bm25), ws)

    def damaged(name: str, source: Path, damage: Callable[[Path], None]) -> None:
        folder = ws / "damaged" / name.replace(" ", "-")
        shutil.copytree(source, folder)
        damage(folder)
        row("index", f"{name}: index verify", rankkit("index", "verify", folder), ws)
        row("index", f"{name}: search", rankkit("search", "--index", folder, "-q", "stars"), ws)

    def edit_manifest(**changes):
        def apply(folder: Path) -> None:
            manifest = json.loads((folder / "manifest.json").read_text())
            manifest.update(changes)
            (folder / "manifest.json").write_text(json.dumps(manifest))

        return apply

    def segment(folder: Path) -> Path:
        return max((p for p in (folder / "lucene").iterdir() if p.is_file()), key=lambda p: p.stat().st_size)

    damaged("FAISS file missing", dense, lambda f: (f / "index.faiss").unlink())
    damaged(
        "FAISS file truncated", dense, lambda f: (f / "index.faiss").write_bytes((f / "index.faiss").read_bytes()[:99])
    )
    damaged(
        "FAISS file garbage (same size)",
        dense,
        lambda f: (f / "index.faiss").write_bytes(bytes((f / "index.faiss").stat().st_size)),
    )
    damaged(
        "FAISS file garbage, old manifest without checksums",
        dense,
        lambda f: ((f / "index.faiss").write_bytes(b"garbage" * 50), edit_manifest(files={})(f)),
    )
    damaged("docids file missing", dense, lambda f: (f / "docids.txt").unlink())
    damaged(
        "Lucene segment file corrupt (zeroed, same size)",
        bm25,
        lambda f: segment(f).write_bytes(bytes(segment(f).stat().st_size)),
    )
    damaged("Lucene segment file missing", bm25, lambda f: segment(f).unlink())
    damaged(
        "Lucene segments_N missing, old manifest",
        bm25,
        lambda f: ([p.unlink() for p in (f / "lucene").glob("segments_*")], edit_manifest(files={})(f)),
    )
    damaged("manifest kind dense over a BM25 folder", bm25, edit_manifest(kind="dense"))
    damaged("manifest kind bm25 over a dense folder", dense, edit_manifest(kind="bm25"))
    damaged("manifest document count 81 (index holds 80)", dense, edit_manifest(count=81))
    damaged("BM25 manifest document count 79 (index holds 80)", bm25, edit_manifest(count=79))
    damaged("manifest dimension 385 (the FAISS index holds 384)", dense, edit_manifest(dimension=385))

    def replace_index_file(make: Callable[[Path], None]) -> Callable[[Path], None]:
        def apply(folder: Path) -> None:
            (folder / "index.faiss").unlink()
            make(folder / "index.faiss")

        return apply

    damaged("index.faiss a named pipe (FIFO)", dense, replace_index_file(os.mkfifo))
    damaged("index.faiss a link to /dev/zero", dense, replace_index_file(lambda p: p.symlink_to("/dev/zero")))


def nan_rows(ws: Workspace) -> None:
    """Non-finite vectors: refused where they are made, checksummed before reuse, caught by verify."""
    import faiss
    import numpy as np
    from safetensors.numpy import load_file, save_file

    nan_model = ws / "minilm-nan"
    shutil.copytree(resolve_model_dir("default"), nan_model)
    weights = load_file(nan_model / "model.safetensors")
    name = next(key for key in weights if key.endswith("LayerNorm.weight"))
    weights[name] = np.full_like(weights[name], np.nan)
    save_file(weights, nan_model / "model.safetensors", metadata={"format": "pt"})
    out = ws / "indexes" / "nan"
    result = rankkit("index", "build", SAMPLE["collection.tsv"], "--kind", "dense", "--model", nan_model, "-o", out)
    row("nan", "index build --model M, M's weights holding NaN", result, ws, f"index written: {out.exists()}")

    saved = ws / "indexes" / "saved"
    args = ["index", "build", SAMPLE["collection.tsv"], "--kind", "dense", "-o", saved, "--save-embeddings"]
    assert rankkit(*args).returncode == 0
    embeddings = saved / "embeddings.f32"
    vectors = np.fromfile(embeddings, dtype=np.float32)
    vectors[: vectors.size // 80] = np.nan  # the first document's vector
    vectors.tofile(embeddings)
    rebuilt = ws / "indexes" / "rebuilt"
    from_saved = ["index", "build", SAMPLE["collection.tsv"], "--kind", "dense", "--factory", "HNSW32"]
    result = rankkit(*from_saved, "--embeddings-from", saved, "-o", rebuilt)
    row("nan", "--embeddings-from INDEX, its embeddings.f32 changed (first vector NaN)", result, ws)
    Manifest.read(saved).write(saved)  # the NaN file recorded as if built so
    result = rankkit(*from_saved, "--embeddings-from", saved, "-o", rebuilt)
    row("nan", "--embeddings-from INDEX, a NaN vector its manifest records", result, ws)
    row("nan", "index verify of that index (NaN in embeddings.f32)", rankkit("index", "verify", saved), ws)
    (saved / "embeddings.f32").unlink()
    index = faiss.read_index(str(saved / "index.faiss"))
    stored = index.reconstruct_n(0, index.ntotal)
    stored[0] = np.nan
    nan_index = faiss.IndexFlatIP(stored.shape[1])
    nan_index.add(stored)
    faiss.write_index(nan_index, str(saved / "index.faiss"))
    Manifest.read(saved).write(saved)
    row(
        "nan",
        "index verify, index.faiss holding a NaN vector (manifest re-recorded)",
        rankkit("index", "verify", saved),
        ws,
    )


def tmpfs_allowed() -> bool:
    """Whether this user may mount a tmpfs in a private mount namespace (unshare -rm)."""
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", 'mount -t tmpfs -o size=4k tmpfs "$0"', tempfile.mkdtemp()],
        capture_output=True,
    )
    return probe.returncode == 0


FULL_DISK_SCRIPT = """
mount -t tmpfs -o size="$SIZE_KB"k tmpfs "$DISK" || exit 97
if [ -n "$EARLIER" ]; then cp -a "$EARLIER" "$DISK/" || exit 98; fi
(cd "$DISK" && find . -type f -exec sha256sum {} + | sort) > "$REPORT.before"
"$@"
status=$?
(cd "$DISK" && find . -type f -exec sha256sum {} + | sort) > "$REPORT.after"
(cd "$DISK" && ls -A) > "$REPORT.left"
exit $status
"""


def kib_of(path: Path) -> int:
    """What `path` takes on a tmpfs, in KiB (4 KiB pages per file)."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(-(-p.stat().st_size // 4096) * 4 for p in files)


def on_full_disk(
    ws: Workspace, name: str, args: Callable[[Path], list], earlier: Path | None = None, free_kib: int = 64
) -> tuple[subprocess.CompletedProcess, str]:
    """`rankkit ARGS(disk)` with `disk` a real full disk: a tmpfs holding a copy of `earlier` (the
    output the command may replace) and `free_kib` KiB free. Returns the result and the check:
    whether the copy of `earlier` is unchanged, and what is left on the disk."""
    disk, report = ws / f"disk-{name}", ws / f"disk-{name}"
    disk.mkdir()
    env = {
        **os.environ,
        "COLUMNS": "100",
        "DISK": str(disk),
        "EARLIER": str(earlier or ""),
        "REPORT": str(report),
        "SIZE_KB": str(free_kib + (kib_of(earlier) if earlier else 0)),
    }
    result = subprocess.run(
        ["unshare", "-rm", "sh", "-c", FULL_DISK_SCRIPT, "sh", RANKKIT, *map(str, args(disk))],
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=REPO_ROOT,
        env=env,
    )
    before, after = (Path(f"{report}.{when}").read_text().splitlines() for when in ("before", "after"))
    left = Path(f"{report}.left").read_text().split()
    kept = (
        ""
        if earlier is None
        else ("earlier output unchanged; " if set(before) <= set(after) else "EARLIER OUTPUT CHANGED; ")
    )
    return result, f"{kept}left on the disk: {', '.join(left) or 'nothing'}"


def disk_full_rows(ws: Workspace, bm25: Path, dense: Path, run50: Path, mined: Path) -> None:
    """A full disk in every command that writes an output: one line naming it and the fix, the
    earlier output kept, temporary files removed."""
    if not tmpfs_allowed():
        print("disk full: skipped (unshare -rm cannot mount a tmpfs here)", flush=True)
        return
    reviews = REPO_ROOT / "rankkit" / "sentiment" / "sample" / "reviews.csv"
    trained = ws / "trained"  # data_loss_rows trains it; --only disk-full trains it here
    if not (trained / "model").is_dir():
        assert rankkit(*train_args(ws, mined, trained, "--max-steps", 1)).returncode == 0
    cases: list[tuple[str, Callable[[Path], list], Path | None, int]] = [
        (
            "index build --kind bm25 (Lucene's own IOException)",
            lambda d: ["index", "build", SAMPLE["collection.tsv"], "--kind", "bm25", "-o", d / "bm25"],
            None,
            12,
        ),
        (
            "index build --kind dense -o INDEX --overwrite",
            lambda d: [
                "index",
                "build",
                SAMPLE["collection.tsv"],
                "--kind",
                "dense",
                "-o",
                d / dense.name,
                "--overwrite",
            ],
            dense,
            64,
        ),
        (
            "search -o RUN over an earlier RUN",
            lambda d: ["search", "--index", bm25, "--queries", SAMPLE["queries.tsv"], "-o", d / run50.name, "-k", 50],
            run50,
            4,
        ),
        (
            "mine -o FILE",
            lambda d: (
                ["mine", "--queries", SAMPLE["queries.tsv"], "--qrels", SAMPLE["qrels.txt"]]
                + ["--corpus", SAMPLE["collection.tsv"], "--run", run50, "--max-rank", 50, "-o", d / "mined.jsonl"]
            ),
            None,
            4,
        ),
        (
            "sentiment train --method tfidf",
            lambda d: (
                ["sentiment", "train", "--reviews", reviews, "--rating-column", "rating"]
                + ["--method", "tfidf", "-o", d / "sentiment"]
            ),
            None,
            16,
        ),
        ("export beir", lambda d: ["export", "beir", "-o", d / "beir", "--split", "dev"], None, 16),
        (
            "train -o DIR --overwrite over a trained model",
            lambda d: train_args(ws, mined, d / trained.name, "--max-steps", 1, "--overwrite"),
            trained,
            64,
        ),
        (
            "train -o DIR --checkpoint-every 1 (a new DIR)",
            lambda d: train_args(ws, mined, d / "checkpointed", "--max-steps", 2, "--checkpoint-every", 1),
            None,
            1024,
        ),
    ]
    for number, (case, args, earlier, free_kib) in enumerate(cases):
        result, check = on_full_disk(ws, str(number), args, earlier, free_kib)
        row("disk full", f"{case}, on a full disk ({free_kib} KiB free)", result, ws, check)


def second_pass_rows(ws: Workspace, mined: Path) -> None:
    """sentiment train --method tfidf on a handful of reviews; train reranker from a GPT-2 model."""
    sys.path.insert(0, str(REPO_ROOT / "tests"))
    from conftest import make_tiny_gpt2

    for count, ratings in ((4, [5, 1, 5, 1]), (3, [5, 1, 5])):
        reviews = ws / f"reviews-{count}.csv"
        reviews.write_text("text,rating\n" + "".join(f'"review number {i}",{r}\n' for i, r in enumerate(ratings)))
        args = ["--reviews", reviews, "--rating-column", "rating", "--method", "tfidf", "-o", ws / f"s-{count}"]
        result = rankkit("sentiment", "train", *args)
        row("cli", f"sentiment train --method tfidf on a {count}-review file", result, ws)
    gpt2 = make_tiny_gpt2(ws / "tiny-gpt2")
    result = rankkit(
        "train", "reranker", *train_args(ws, mined, ws / "gpt2-reranker", "--max-steps", 2)[2:], "--model", gpt2
    )
    row("cli", "train reranker --model M, M a GPT-2 model (no padding token)", result, ws)


def fuzz(examples: int) -> dict:
    report = Path(tempfile.mkdtemp()) / "fuzz.json"
    started = time.time()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_fuzz_readers.py"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "RANKKIT_FUZZ_REPORT": str(report), "RANKKIT_FUZZ_EXAMPLES": str(examples)},
    )
    counts = json.loads(report.read_text())
    return {
        "pytest": result.stdout.strip().splitlines()[-1],
        "seconds": round(time.time() - started, 1),
        "inputs": sum(counts["inputs"].values()),
        "parsed": sum(counts["parsed"].values()),
        "crashes": sum(counts["crashes"].values()),
        "per_reader": counts,
    }


GROUPS = ("data-loss", "cli", "index", "nan", "disk-full", "second-pass")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fuzz-examples", type=int, default=500, help="hypothesis examples per fuzz test")
    parser.add_argument(
        "--only",
        type=lambda text: text.split(","),
        default=list(GROUPS),
        help=f"comma-separated row groups of {', '.join(GROUPS)}: run those rows, print them, and save nothing",
    )
    args = parser.parse_args()
    started = time.time()
    ws = Workspace()
    try:
        bm25, dense = build_indexes(ws)
        run10, run50 = write_runs(ws, bm25)
        mined = mine_set(ws, run50)
        chosen = set(args.only)
        if "data-loss" in chosen:
            data_loss_rows(ws, mined)
        if "cli" in chosen:
            cli_rows(ws, bm25, dense, run10, run50)
        if "index" in chosen:
            index_rows(ws, bm25, dense)
        if "nan" in chosen:
            nan_rows(ws)
        if "disk-full" in chosen:
            disk_full_rows(ws, bm25, dense, run50, mined)
        if "second-pass" in chosen:
            second_pass_rows(ws, mined)
    finally:
        shutil.rmtree(ws.root, ignore_errors=True)
    if chosen != set(GROUPS):
        return
    fuzzed = fuzz(args.fuzz_examples)
    tracebacks = sum(r["traceback"] for r in ROWS)
    per_reader = [
        {
            "reader input": name,
            "inputs": n,
            "parsed": fuzzed["per_reader"]["parsed"].get(name, 0),
            "crashes": fuzzed["per_reader"]["crashes"].get(name, 0),
        }
        for name, n in fuzzed["per_reader"]["inputs"].items()
    ]
    save_result(
        "reliability",
        ROWS,
        title="Reliability: issue 13's CLI, data-loss and index rows, as run",
        columns=["group", "input", "exit", "message", "check"],
        params={"fuzz_examples_per_test": args.fuzz_examples},
        extra_tables={"Fuzzing the readers (tests/test_fuzz_readers.py)": per_reader},
        notes=[
            f"{len(ROWS)} commands run, {tracebacks} printed a traceback.",
            f"Fuzzing: {fuzzed['inputs']} inputs ({fuzzed['parsed']} parsed, the rest refused with "
            f"RankkitError), {fuzzed['crashes']} crashes, {fuzzed['seconds']} s; pytest: {fuzzed['pytest']}.",
            "exit 2: rankkit's user errors and Click's usage errors (range checks at parse time); "
            "$W is the scratch folder of the run.",
        ],
        started=started,
    )


if __name__ == "__main__":
    main()
