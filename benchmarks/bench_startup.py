"""Start-up of the `rankkit` command: wall time of `--help` (the app and three sub-commands) and
of a BM25-only search, with the modules each imports (`python -X importtime`), for the working
tree against a reference commit, interleaved (ABBA) in one run.

Each tree is copied into a temporary folder in the installed layout (cli/ as rankkit/cli) and
run from there by the same launcher, so both start the same way; the BM25 index is built once by
the working tree. Writes benchmarks/results/startup.{md,json}.

    .venv/bin/python benchmarks/bench_startup.py --ref a03a934 --runs 5
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO_ROOT, median, save_result  # noqa: E402

HEAVY = ("torch", "transformers", "sentence_transformers", "faiss")
LAUNCHER = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); sys.argv[0] = 'rankkit'; from rankkit.cli.app import main; main()"
)


def installed_layout(source: Path, into: Path) -> Path:
    """rankkit/ with cli/ inside it as rankkit/cli, as `pip install` lays them out."""
    shutil.copytree(source / "rankkit", into / "rankkit", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(source / "cli", into / "rankkit" / "cli", ignore=shutil.ignore_patterns("__pycache__"))
    return into


def checkout(ref: str, into: Path) -> Path:
    """The files of commit `ref` (git archive), in the installed layout."""
    tree = into / "tree"
    tree.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", ref, "rankkit", "cli"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return installed_layout(tree, into / "pkg")


def run(package: Path, args: list[str]) -> tuple[float, list[str]]:
    """Wall seconds of one `rankkit ARGS` from `package`, and the heavy modules it imported."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", LAUNCHER, str(package), *args], capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"rankkit {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    modules = [line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    return wall, sorted({m for m in modules if m.split(".")[0] in HEAVY and "." not in m})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", default="a03a934", help="Reference commit (default: the CLI before issue 28).")
    parser.add_argument("--runs", type=int, default=5, help="Runs of each command per tree (median reported).")
    args = parser.parse_args()
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        trees = {
            "before": checkout(args.ref, tmp_path / "before"),
            "after": installed_layout(REPO_ROOT, tmp_path / "after"),
        }
        sample = REPO_ROOT / "rankkit" / "data" / "sample" / "collection.tsv"
        index = tmp_path / "sample-bm25"
        subprocess.run(
            [
                sys.executable,
                "-c",
                LAUNCHER,
                str(trees["after"]),
                "index",
                "build",
                str(sample),
                "--kind",
                "bm25",
                "-o",
                str(index),
            ],
            check=True,
            capture_output=True,
        )
        commands = {
            "rankkit --help": ["--help"],
            "rankkit search --help": ["search", "--help"],
            "rankkit index build --help": ["index", "build", "--help"],
            "rankkit train reranker --help": ["train", "reranker", "--help"],
            "rankkit search (BM25, one query)": ["search", "-i", str(index), "-q", "how do stars form"],
        }
        walls: dict[tuple[str, str], list[float]] = {}
        heavy: dict[tuple[str, str], list[str]] = {}
        for round_ in range(args.runs):
            order = list(trees) if round_ % 2 == 0 else list(trees)[::-1]  # ABBA
            for name, command in commands.items():
                for tree in order:
                    wall, loaded = run(trees[tree], command)
                    walls.setdefault((name, tree), []).append(wall)
                    heavy[(name, tree)] = loaded
    rows = []
    for name in commands:
        before, after = median(walls[(name, "before")]), median(walls[(name, "after")])
        rows.append(
            {
                "command": name,
                f"before ({args.ref}) s": round(before, 3),
                "after s": round(after, 3),
                "speed-up": round(before / after, 2),
                "heavy modules before": ", ".join(heavy[(name, "before")]) or "none",
                "heavy modules after": ", ".join(heavy[(name, "after")]) or "none",
            }
        )
    save_result(
        "startup",
        rows,
        title="Start-up of the rankkit command",
        started=started,
        params={"ref": args.ref, "runs": args.runs},
        notes=[
            f"wall seconds, median of {args.runs} runs per command and tree, interleaved ABBA; each run "
            "under `python -X importtime` (which adds a little to both)",
            "heavy modules: which of " + ", ".join(HEAVY) + " the command imported",
        ],
    )


if __name__ == "__main__":
    main()
