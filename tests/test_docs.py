"""The README and docs/ pages: their links resolve, every page is reachable, and every `sh` and
`python` block runs, in order, from the repository root (slow: the real model).

Blocks run page by page: the README first, then docs/ in PAGES order (getting-started first, then
the pages that use the indexes and files it writes). Blocks that start a server (`rankkit serve`)
or set up the machine (`make`) are left to the serve tests and to CI; `console` blocks (shared
data, several processes, a GPU) are not run here."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
import typer

from rankkit.cli.app import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
BENCHMARKS_README = ROOT / "benchmarks" / "README.md"
MAX_README_LINES = 220

# The order the blocks run in: each page may use what the pages before it wrote.
PAGES = [
    "getting-started.md",
    "indexes.md",
    "search.md",
    "evaluation.md",
    "mining.md",
    "training.md",
    "cet.md",
    "distillation.md",
    "sentiment.md",
    "serving.md",
    "scaling.md",
    "backends.md",
    "file-formats.md",
    "python-api.md",
]

BLOCK = re.compile(r"^```(sh|python)\n(.*?)^```", re.S | re.M)
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*$", re.M)


def runnable_blocks(page: Path) -> list[tuple[str, str]]:
    """The page's `sh` and `python` blocks in order, less those that start a server or run make."""
    blocks = BLOCK.findall(page.read_text(encoding="utf-8"))
    return [(kind, code) for kind, code in blocks if "rankkit serve" not in code and not code.startswith("make ")]


def ordered_pages() -> list[Path]:
    return [README, *(DOCS / name for name in PAGES)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but hyphens and underscores dropped,
    spaces as hyphens (inline code marks and link targets removed first)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    found: set[str] = set()
    for heading in HEADING.findall(text):
        base = slug(heading)
        name, n = base, 1
        while name in found:  # GitHub numbers repeated headings: name, name-1, name-2, ...
            name, n = f"{base}-{n}", n + 1
        found.add(name)
    return found


def relative_links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    text = re.sub(r"`[^`\n]*`", "", text)  # links inside inline code are not links
    return [target for target in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", target)]


def linked_pages() -> list[Path]:
    """Every page whose links are checked: the README, docs/ (its index included), benchmarks/README."""
    return [README, *sorted(DOCS.glob("*.md")), BENCHMARKS_README]


def test_every_docs_page_is_in_the_run_order():
    pages = {p.name for p in DOCS.glob("*.md")} - {"README.md"}
    assert pages == set(PAGES), f"add new pages to PAGES, drop removed ones: {sorted(pages ^ set(PAGES))}"


def test_every_docs_page_is_linked_from_the_readme_or_the_docs_index():
    linked = set()
    for page in (README, DOCS / "README.md"):
        for target in relative_links(page):
            linked.add((page.parent / target.split("#")[0]).resolve())
    missing = [p.name for p in DOCS.glob("*.md") if p.name != "README.md" and p.resolve() not in linked]
    assert not missing, f"docs pages linked from neither README.md nor docs/README.md: {missing}"
    assert (DOCS / "README.md").resolve() in linked, "README.md does not link the docs index"


def test_every_relative_link_resolves():
    broken = []
    for page in linked_pages():
        for target in relative_links(page):
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and file.suffix == ".md" and anchor not in anchors(file):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_readme_is_a_front_page():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; keep it at most {MAX_README_LINES}"
    assert "make quickstart" in README.read_text(encoding="utf-8")
    assert "make test" in README.read_text(encoding="utf-8")


def test_readme_and_docs_hold_no_history_or_machine_facts():
    """Dates, load averages and issue numbers belong in benchmarks/results and the changelog."""
    patterns = {
        "a date": r"\b20\d\d-\d\d-\d\d\b",
        "a load average": r"\bload (average|~?\d)",
        "an issue number": r"\bissue #?\d+",
        "a test count": r"\b\d[\d,]* (fast |slow )?tests\b",
    }
    found = []
    for page in ordered_pages() + [DOCS / "README.md"]:
        text = page.read_text(encoding="utf-8")
        for what, pattern in patterns.items():
            for match in re.finditer(pattern, text, re.I):
                found.append(f"{page.relative_to(ROOT)}: {what}: {match.group(0)!r}")
    assert not found, "\n".join(found)


def documented_commands() -> list[tuple[str, list[str]]]:
    """Every `rankkit ...` command in a shell block of README or docs/ (run or not), as its page and
    its arguments: continuation lines joined, cut at the first shell operator."""
    found = []
    for page in ordered_pages():
        text = page.read_text(encoding="utf-8")
        for block in re.findall(r"^```(?:sh|console)\n(.*?)^```", text, re.S | re.M):
            for line in block.replace("\\\n", " ").splitlines():
                words = shlex.split(line, comments=True)
                for start, word in enumerate(words):
                    if Path(word).name in ("rankkit", "rankkit.cli") and not word.endswith((".py", ".md")):
                        args = []
                        for arg in words[start + 1 :]:
                            if arg in ("|", "||", "&&", ";", "&", ">", "2>", ">>") or arg.startswith((">", "2>")):
                                break
                            args.append(arg)
                        found.append((str(page.relative_to(ROOT)), args))
                        break
    return found


def test_every_documented_command_parses_with_the_current_options():
    """Each documented command's sub-command and options exist and its values pass their checks,
    the blocks that are not run included (shared data, several processes, a GPU, a server)."""
    root = typer.main.get_command(app)
    failures = []
    commands = documented_commands()
    for page, args in commands:
        command, rest = root, list(args)
        try:
            while isinstance(command, click.Group):
                command, rest = command.commands[rest[0]], rest[1:]
            if "--help" not in rest:
                command.make_context("rankkit", rest)
        except (KeyError, IndexError, click.ClickException) as exc:
            failures.append(f"{page}: rankkit {' '.join(args)}: {exc}")
    assert len(commands) >= 30 and not failures, "\n".join(failures)


def test_documented_commands_ask_for_no_precision_a_cpu_may_lack():
    """The default `--precision auto` picks bf16 where it is native; a documented command that asked
    for bf16 outright would fail on a CPU without it."""
    found = [
        f"{page}: rankkit {' '.join(args)}"
        for page, args in documented_commands()
        if " ".join(args).find("--precision bf16") >= 0
    ]
    assert not found, "\n".join(found)


def test_the_tutorial_has_runnable_blocks():
    assert [kind for kind, _ in runnable_blocks(DOCS / "getting-started.md")].count("sh") >= 5
    assert "python" in [kind for kind, _ in runnable_blocks(DOCS / "python-api.md")]


@pytest.mark.slow
def test_every_documented_command_runs(shared_data):
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "RANKKIT_NATIVE_BF16": "0",
    }  # `--precision auto` chooses fp32, as on a CPU without bf16
    for page in ordered_pages():
        for kind, code in runnable_blocks(page):
            command = ["bash", "-euo", "pipefail", "-c", code] if kind == "sh" else [sys.executable, "-c", code]
            result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
            assert result.returncode == 0, (
                f"{page.relative_to(ROOT)}: block failed:\n{code}\n--- stderr ---\n{result.stderr[-3000:]}"
            )
            if "run.bm25.top100.trec" in code:
                assert "0.5058" in result.stdout
