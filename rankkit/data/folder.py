"""A folder of text files as a corpus: every .txt and .md file under it (recursively) is one
document. Its docid is the file's path relative to the folder, with '/' separators; its title is
the first non-blank line when that line is a markdown heading (`# Title`), else there is none; its
text is the rest of the file. Hidden files and folders (a name starting with '.') are skipped.

Kept free of rankkit.data.corpus (which reads folders through it), so the two import one way.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Collection, Iterator

from rankkit.data.files import UTF8_BOM
from rankkit.errors import RankkitError, file_error

TEXT_SUFFIXES: tuple[str, ...] = (".txt", ".md")
HEADING = re.compile(r"#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*")  # ATX heading; a closing run of #s is dropped
# a collection or BEIR folder holds its corpus in one file (and qrels.txt, which is no document)
CORPUS_FILES = ("collection.tsv", "corpus.jsonl")
FIX_NO_FILES = (
    "put text files (.txt or .md) in it, or give a corpus file instead "
    "(.tsv: docid<TAB>text, or pyserini / BEIR .jsonl)"
)


def is_text_file(path: Path) -> bool:
    return path.suffix.lower() in TEXT_SUFFIXES


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def text_files(root: str | Path) -> list[Path]:
    """The corpus's files, sorted by docid (so the same folder always gives the same index); an
    error naming the folder when it holds none."""
    root = Path(root)
    if not root.is_dir():
        raise RankkitError(f"{root}: no such folder. Fix: check the path (relative paths start at {Path.cwd()})")
    for name in CORPUS_FILES:
        if (root / name).is_file():
            raise file_error(
                root,
                None,
                f"is a collection folder (it holds {name}), not a folder of text files",
                f"give its corpus file, {root / name}",
            )
    found, others = [], []
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if _hidden(relative) or not path.is_file():
            continue
        (found if is_text_file(path) else others).append(path)
    if not found:
        what = (
            f"no .txt or .md files (it holds {len(others)} other files, e.g. "
            f"{sorted(others)[0].relative_to(root).as_posix()})"
            if others
            else "no .txt or .md files (it is empty)"
        )
        raise file_error(root, None, what, FIX_NO_FILES)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def folder_docid(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def read_text_file(path: Path) -> tuple[str, str]:
    """(title, text) of one file: the title is the first non-blank line when it is a markdown
    heading, and the text the rest; otherwise no title and the whole file as text."""
    raw = path.read_bytes()
    if raw.startswith(UTF8_BOM):
        raw = raw[len(UTF8_BOM) :]
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise file_error(
            path,
            line,
            f"not valid UTF-8 ({exc.reason} at byte {exc.start})",
            "re-encode the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`), or move it out of the folder",
        ) from None
    content = content.replace("\r\n", "\n").replace("\r", "\n").strip()
    first, _, rest = content.partition("\n")
    heading = HEADING.fullmatch(first.strip())
    if heading and heading.group(1):
        return heading.group(1).strip(), rest.strip()
    return "", content


def iter_folder_docs(root: str | Path, docids: Collection[str] | None = None) -> Iterator[tuple[str, str, str]]:
    """(docid, title, text) of every document of the folder, in docid order; with `docids`, only
    of those (each file is opened directly, so the rest of the folder is not read; ids that are
    no file of the folder are left out)."""
    root = Path(root)
    if docids is None:
        for path in text_files(root):
            yield (folder_docid(root, path), *read_text_file(path))
        return
    if not root.is_dir():
        raise RankkitError(f"{root}: no such folder. Fix: check the path (relative paths start at {Path.cwd()})")
    for docid in sorted(set(docids)):
        relative = Path(docid)
        path = root / relative
        if (
            relative.is_absolute()
            or ".." in relative.parts
            or _hidden(relative)
            or not is_text_file(path)
            or not path.is_file()
        ):
            continue
        yield (docid, *read_text_file(path))


def folder_digest(root: str | Path) -> tuple[str, int]:
    """(SHA-256, total bytes) of the corpus: its files' docids, sizes and contents, in docid
    order, so any added, removed, renamed or edited file changes it."""
    root = Path(root)
    digest, total = hashlib.sha256(), 0
    for path in text_files(root):
        content = path.read_bytes()
        digest.update(f"{folder_docid(root, path)}\0{len(content)}\0".encode())
        digest.update(content)
        total += len(content)
    return digest.hexdigest(), total
