"""rankkit: neural retrieval and ranking (BM25 and dense indexes, negative mining, CET, evaluation)."""

__version__ = "0.1.0"
