"""Corpora: MS MARCO TSV (id, text), pyserini JSONL (id, contents), BEIR JSONL (_id, title, text),
and a folder of .txt / .md files (one document per file: see rankkit.data.folder).

Corpora are streamed document by document, so an 8.8M-passage file is never held as a dict.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Collection, Iterable, Iterator, Literal

from rankkit.data import irds
from rankkit.data.files import atomic_write, iter_lines, json_object
from rankkit.data.folder import iter_folder_docs
from rankkit.errors import RankkitError, file_error

CorpusFormat = Literal["tsv", "pyserini", "beir", "folder"]
CORPUS_FORMATS: tuple[str, ...] = ("tsv", "pyserini", "beir")  # the file formats, read and written
FOLDER = "folder"  # a folder of .txt / .md files, read only


@dataclass(frozen=True, slots=True)
class Document:
    docid: str
    text: str
    title: str = ""

    @property
    def contents(self) -> str:
        """Title and text as one string, the form both BM25 and encoders index."""
        return f"{self.title} {self.text}" if self.title else self.text


def corpus_format(corpus: str | Path) -> CorpusFormat:
    """The format of a corpus to index, guessed from its contents; ir_datasets corpora are read as TSV."""
    return "tsv" if irds.is_irds(str(corpus)) else detect_corpus_format(corpus)


def detect_corpus_format(path: str | Path) -> CorpusFormat:
    """Guess the format from the extension and, for JSONL, the keys of the first record; a
    folder is a folder of text files."""
    path = Path(path)
    if path.is_dir():
        return FOLDER
    suffixes = [s for s in path.suffixes if s != ".gz"]
    if suffixes and suffixes[-1] in (".tsv", ".txt"):
        return "tsv"
    if suffixes and suffixes[-1] in (".jsonl", ".json"):
        for number, line in iter_lines(path):
            record = json_object(path, number, line)
            if "_id" in record:
                return "beir"
            if "id" in record and "contents" in record:
                return "pyserini"
            raise file_error(
                path,
                number,
                f"JSONL record has keys {sorted(record)}",
                "use pyserini JSONL {id, contents} or BEIR JSONL {_id, title, text}",
            )
        raise file_error(path, None, "file is empty", "give a corpus with at least one document")
    raise file_error(
        path,
        None,
        f"cannot tell the corpus format from the name {path.name!r}",
        "name it .tsv or .jsonl, or pass --format tsv|pyserini|beir",
    )


def _string_field(path: Path, number: int, record: dict, key: str, required: bool = True) -> str:
    value = record.get(key)
    if value is None and not required:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)) or (required and str(value) == ""):
        raise file_error(
            path, number, f"field {key!r} is missing or not a string", f"give every record a non-empty {key!r}"
        )
    try:
        str(value).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: valid JSON (\\ud800), but not text
        raise file_error(
            path,
            number,
            f"field {key!r} holds a lone surrogate, which is not text",
            "write valid Unicode (escape pairs such as \\ud83d\\ude00 are fine)",
        ) from None
    return str(value)


def _parse_document(path: Path, number: int, line: str, fmt: CorpusFormat) -> Document:
    if fmt == "tsv":
        docid, sep, text = line.partition("\t")
        if not sep or not docid.strip():
            raise file_error(path, number, "expected 'docid<TAB>text'", "separate the id from the text with a tab")
        return Document(docid.strip(), text)
    record = json_object(path, number, line)
    if fmt == "pyserini":
        return Document(
            _string_field(path, number, record, "id"), _string_field(path, number, record, "contents", required=False)
        )
    return Document(
        _string_field(path, number, record, "_id"),
        _string_field(path, number, record, "text", required=False),
        _string_field(path, number, record, "title", required=False),
    )


def read_corpus(path: str | Path, fmt: CorpusFormat | None = None, word_ids: bool = False) -> Iterator[Document]:
    """Stream the documents of a corpus file (or `irds:<id>`); duplicate ids are an error, and so,
    with `word_ids` (for indexes, whose hits go to TREC runs), are ids containing whitespace."""
    if irds.is_irds(path):
        yield from (Document(docid, text, title) for docid, title, text in irds.iter_docs(str(path)))
        return
    path = Path(path)
    fmt = fmt or detect_corpus_format(path)
    if fmt == FOLDER or path.is_dir():
        yield from _read_folder(path, fmt, word_ids)
        return
    if fmt not in CORPUS_FORMATS:
        raise file_error(path, None, f"unknown corpus format {fmt!r}", f"use one of {', '.join(CORPUS_FORMATS)}")
    first_line: dict[str, int] = {}
    for number, line in iter_lines(path):
        doc = _parse_document(path, number, line, fmt)
        if word_ids and any(c.isspace() for c in doc.docid):
            raise file_error(
                path,
                number,
                f"docid {doc.docid!r} contains whitespace, which TREC runs and qrels cannot hold",
                "give every document a single-word id (e.g. replace spaces by '_')",
            )
        if doc.docid in first_line:
            raise file_error(
                path,
                number,
                f"duplicate docid {doc.docid!r} (first on line {first_line[doc.docid]})",
                "give every document a unique id",
            )
        first_line[doc.docid] = number
        yield doc
    if not first_line:
        raise file_error(path, None, "file is empty", "give a corpus with at least one document")


def _read_folder(path: Path, fmt: str, word_ids: bool) -> Iterator[Document]:
    if fmt != FOLDER:
        raise file_error(
            path,
            None,
            f"is a folder, but the corpus format {fmt!r} is a file format",
            "drop --format to read the folder's .txt and .md files, or name the corpus file",
        )
    for docid, title, text in iter_folder_docs(path):
        if word_ids and any(c.isspace() for c in docid):
            raise file_error(
                path / docid,
                None,
                f"its docid {docid!r} (the path in the folder) contains whitespace, "
                "which TREC runs and qrels cannot hold",
                "rename it without spaces (e.g. replace them by '_')",
            )
        yield Document(docid, text, title)


def read_corpus_rows(
    path: str | Path, fmt: CorpusFormat | None, rows: range | None, word_ids: bool = False
) -> Iterator[Document]:
    """read_corpus limited to the documents at positions `rows` (all when None): a shard's. The
    documents before them are still read, so a duplicate of an earlier id is caught as in a full read."""
    documents = read_corpus(path, fmt, word_ids=word_ids)
    return documents if rows is None else islice(documents, rows.start, rows.stop)


def document_chunks(docs: Iterable[Document], size: int) -> Iterator[list[Document]]:
    """`docs` in lists of `size` (the last one shorter): what an index encodes at a time."""
    chunk: list[Document] = []
    for doc in docs:
        chunk.append(doc)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def read_doc_texts(
    path: str | Path, fmt: CorpusFormat | None = None, docids: Collection[str] | None = None
) -> dict[str, str]:
    """{docid: contents} for the documents in `docids` (all when None), streamed from the corpus
    (from a folder corpus, only the files of `docids` are read)."""
    if docids is not None and not irds.is_irds(path) and (fmt == FOLDER or Path(path).is_dir()):
        return {docid: Document(docid, text, title).contents for docid, title, text in iter_folder_docs(path, docids)}
    wanted = set(docids) if docids is not None else None
    return {doc.docid: doc.contents for doc in read_corpus(path, fmt) if wanted is None or doc.docid in wanted}


def find_documents(path: str | Path, docids: Collection[str], fmt: CorpusFormat | None = None) -> Iterator[Document]:
    """The documents of `docids` found in a corpus, read until all were seen: a folder opens only
    their files; a file's other lines are skipped unparsed (a TSV line by its id, a JSONL line
    naming none of them), so a few documents of an 8.8M-passage file are found without parsing it
    or holding its ids. Ids missing from the corpus are left out; duplicates are not checked."""
    remaining = set(docids)
    if not remaining:
        return
    if irds.is_irds(path):
        yield from (doc for doc in read_corpus(path) if doc.docid in remaining)
        return
    if fmt == FOLDER or Path(path).is_dir():
        yield from (Document(docid, text, title) for docid, title, text in iter_folder_docs(path, remaining))
        return
    path = Path(path)
    fmt = fmt or detect_corpus_format(path)
    # how each id may be written in a JSONL line: as it is, or with JSON's escapes
    spellings = {spelling for docid in remaining for spelling in (docid, json.dumps(docid)[1:-1])}
    for number, line in iter_lines(path):
        if fmt == "tsv" and line.partition("\t")[0].strip() not in remaining:
            continue
        if fmt != "tsv" and not any(spelling in line for spelling in spellings):
            continue
        doc = _parse_document(path, number, line, fmt)
        if doc.docid in remaining:
            yield doc
            remaining.discard(doc.docid)
            if not remaining:
                return


def write_corpus(docs: Iterable[Document], path: str | Path, fmt: CorpusFormat = "tsv") -> int:
    """Write documents atomically in the given format; returns the number written."""
    if fmt not in CORPUS_FORMATS:
        raise file_error(path, None, f"unknown corpus format {fmt!r}", f"use one of {', '.join(CORPUS_FORMATS)}")
    count = 0
    with atomic_write(path) as out:
        for doc in docs:
            if fmt == "tsv":
                if "\t" in doc.docid or "\n" in doc.docid or "\n" in doc.contents or "\t" in doc.contents:
                    raise RankkitError(
                        f"document {doc.docid!r} has a tab or newline, which TSV cannot hold. "
                        "Fix: write it as pyserini or beir JSONL"
                    )
                out.write(f"{doc.docid}\t{doc.contents}\n")
            elif fmt == "pyserini":
                out.write(json.dumps({"id": doc.docid, "contents": doc.contents}, ensure_ascii=False) + "\n")
            elif fmt == "beir":
                out.write(
                    json.dumps({"_id": doc.docid, "title": doc.title, "text": doc.text}, ensure_ascii=False) + "\n"
                )
            else:
                raise RankkitError(f"unknown corpus format {fmt!r}. Fix: use one of {', '.join(CORPUS_FORMATS)}")
            count += 1
    return count
