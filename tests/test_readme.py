"""Every `sh` block of the README runs, in order, from the repository root (slow: real model).

Blocks that start a server (`rankkit serve`) or set up the machine (`make`) are left to the serve
tests and to CI; the python block runs after the shell blocks it depends on."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"```(sh|python)\n(.*?)```", re.S)


def readme_blocks() -> list[tuple[str, str]]:
    blocks = BLOCK.findall((ROOT / "README.md").read_text())
    return [(kind, code) for kind, code in blocks if "rankkit serve" not in code and not code.startswith("make ")]


def test_readme_has_runnable_blocks():
    kinds = [kind for kind, _ in readme_blocks()]
    assert kinds.count("sh") >= 6 and "python" in kinds


def test_every_readme_command_runs(shared_data):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for kind, code in readme_blocks():
        command = ["bash", "-euo", "pipefail", "-c", code] if kind == "sh" else [sys.executable, "-c", code]
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
        assert result.returncode == 0, f"README block failed:\n{code}\n--- stderr ---\n{result.stderr[-3000:]}"
        if "run.bm25.top100.trec" in code:
            assert "0.5058" in result.stdout
