"""Readers and writers for corpora, queries, qrels and runs in the formats the field uses."""

from rankkit.data.collection import CollectionPaths, collection, shared_data_root
from rankkit.data.corpus import Document, detect_corpus_format, read_corpus, read_doc_texts, write_corpus
from rankkit.data.qrels import Qrels, read_qrels, relevant, write_qrels
from rankkit.data.queries import read_queries, write_queries
from rankkit.data.runs import Hit, Run, read_run, write_run

__all__ = [
    "CollectionPaths",
    "Document",
    "Hit",
    "Qrels",
    "Run",
    "collection",
    "detect_corpus_format",
    "read_corpus",
    "read_doc_texts",
    "read_qrels",
    "read_queries",
    "read_run",
    "relevant",
    "shared_data_root",
    "write_corpus",
    "write_qrels",
    "write_queries",
    "write_run",
]
