"""The texts of search hits, read from the corpus an index's manifest records, so that a search
can show what it found beside each docid.

Only the hits' documents are read: a folder corpus opens just their files, an ir_datasets corpus
looks them up in its document store, and a corpus file is scanned until all of them were seen
(rankkit.data.corpus.find_documents).
Where the corpus is gone or unreadable there are no texts, and a warning says why."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Collection, Sequence

from rankkit.data import irds
from rankkit.data.corpus import FOLDER, Document, find_documents, read_doc_texts
from rankkit.errors import RankkitError
from rankkit.index.manifest import CorpusInfo, Manifest

PREVIEW_CHARS = 100


@dataclass(frozen=True)
class HitTexts:
    texts: dict[str, str]  # docid -> contents (title and text), for the docids found
    warning: str | None = None  # why some or all texts are missing, or may not match the index


def shorten(text: str, width: int = PREVIEW_CHARS) -> str:
    """`text` on one line, cut at a word boundary to at most `width` characters, '…' where cut."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    cut = text[: width - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > width // 2 else cut).rstrip() + "…"


def _from_file(corpus: CorpusInfo, wanted: set[str]) -> dict[str, str]:
    return {doc.docid: doc.contents for doc in find_documents(corpus.path, wanted, corpus.format)}  # type: ignore[arg-type]


def _from_irds(spec: str, wanted: set[str]) -> dict[str, str]:
    try:
        found = irds.load_dataset(spec).docs_store().get_many(wanted)
    except (AttributeError, NotImplementedError):  # no document store: stream the corpus
        return read_doc_texts(spec, docids=wanted)
    return {
        docid: Document(docid, getattr(d, "text", "") or d.default_text(), getattr(d, "title", "") or "").contents
        for docid, d in found.items()
    }


def _changed(corpus: CorpusInfo) -> str | None:
    """Why a corpus file may no longer be the one the index was built from (its size differs;
    the full checksum would read the whole file on every search)."""
    path = Path(corpus.path)
    if corpus.format != FOLDER and path.is_file() and corpus.size_bytes and path.stat().st_size != corpus.size_bytes:
        return (
            f"{path} changed since the index was built ({path.stat().st_size:,} bytes, was "
            f"{corpus.size_bytes:,}), so texts may not match the hits. Fix: rebuild the index from it"
        )
    return None


def corpus_texts(corpus: CorpusInfo, docids: Collection[str]) -> HitTexts:
    """The texts of `docids` in one index's corpus, with a warning where it is gone, changed or
    lacks some of them."""
    wanted = set(docids)
    if not wanted:
        return HitTexts({})
    if not irds.is_irds(corpus.path) and not Path(corpus.path).exists():
        return HitTexts(
            {},
            f"no texts: the corpus the index was built from, {corpus.path}, is gone (moved or "
            "deleted). Fix: put it back there, or rebuild the index from where it is now",
        )
    try:
        if irds.is_irds(corpus.path):
            texts = _from_irds(corpus.path, wanted)
        else:
            texts = _from_file(corpus, wanted)
    except RankkitError as exc:
        return HitTexts({}, f"no texts: the corpus could not be read: {exc}")
    warning = _changed(corpus)
    missing = len(wanted - set(texts))
    if warning is None and missing:
        warning = (
            f"{missing} of {len(wanted)} hits are not in {corpus.path}, which changed since the index was "
            "built. Fix: rebuild the index from it"
        )
    return HitTexts(texts, warning)


def hit_texts(index_folders: str | Path | Sequence[str | Path], docids: Collection[str]) -> HitTexts:
    """The texts of `docids` (hits of a search) from the corpus recorded in the index folder's
    manifest; for several folders (a hybrid search), from the first whose corpus is still there."""
    folders = [index_folders] if isinstance(index_folders, (str, Path)) else list(index_folders)
    corpora = [Manifest.read(folder).corpus for folder in folders]
    present = [c for c in corpora if irds.is_irds(c.path) or Path(c.path).exists()]
    return corpus_texts((present or corpora)[0], docids)
