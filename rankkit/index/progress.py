"""Progress bars for index builds: one bar over the whole corpus, sized by a cheap first reading
pass, so the ETA holds from the start (encoding time grows with text length, so the dense bar
counts characters; Lucene's with documents)."""

from __future__ import annotations

from pathlib import Path

from tqdm.auto import tqdm

from rankkit.data.corpus import CorpusFormat, read_corpus_rows


def corpus_size(corpus: str | Path, fmt: CorpusFormat, rows: range | None = None) -> tuple[int, int]:
    """(documents, characters of their contents) of a corpus, or of its documents at positions
    `rows`, by reading it once."""
    documents = characters = 0
    for doc in read_corpus_rows(corpus, fmt, rows):
        documents += 1
        characters += len(doc.contents)
    return documents, characters


def corpus_bar(total: int, desc: str, unit: str) -> tqdm:
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, dynamic_ncols=True)
