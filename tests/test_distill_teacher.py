"""Teachers: a bi-encoder scores by dot product of embeddings computed once per document, a
cross-encoder by pairs, a run by its own scores; open_teacher tells them apart."""

from __future__ import annotations

import pytest

from rankkit.data.runs import Hit, write_run
from rankkit.distill.teacher import BiEncoderTeacher, CrossEncoderTeacher, RunTeacher, model_kind, open_teacher
from rankkit.encode.biencoder import BiEncoder
from rankkit.encode.crossencoder import CrossEncoder
from rankkit.errors import RankkitError

QUERIES = {"q1": "how do stars form", "q2": "why is the sky blue"}
TEXTS = {"a": "stars form in clouds of gas", "b": "the sky scatters blue light", "c": "bread rises with yeast"}
CANDIDATES = {"q1": ["a", "c"], "q2": ["b", "a", "c"]}


@pytest.fixture(scope="module")
def cross_encoder_folder(tmp_path_factory, tiny_model):
    folder = tmp_path_factory.mktemp("tiny-cross-encoder")
    CrossEncoder(tiny_model, device="cpu").save(folder)
    return folder


def test_model_kind_tells_a_cross_encoder_from_a_bi_encoder(tiny_model, cross_encoder_folder):
    assert model_kind(tiny_model) == "bi-encoder"
    assert model_kind(cross_encoder_folder) == "cross-encoder"


def test_bi_encoder_teacher_scores_dot_products_on_the_student_scale(tiny_model):
    teacher = open_teacher(str(tiny_model), device="cpu", bi_encoder_scale=20.0)
    assert isinstance(teacher, BiEncoderTeacher)
    scores = teacher.score(QUERIES, CANDIDATES, TEXTS)
    encoder = BiEncoder(tiny_model, device="cpu")
    for qid, docids in CANDIDATES.items():
        expected = 20.0 * encoder.encode([TEXTS[d] for d in docids]) @ encoder.encode([QUERIES[qid]])[0]
        assert scores[qid] == pytest.approx(expected, abs=1e-4)


def test_bi_encoder_teacher_and_student_encode_queries_with_the_query_prompt(tmp_path):
    """Regression: the teacher's and the student's dot products encoded queries as passages, so an
    E5/BGE-style model's query prompt was never applied."""
    from test_st_stack import st_model

    from rankkit.distill.pipeline import dense_candidates
    from rankkit.train.scorers import BiEncoderScorer

    folder = st_model(tmp_path / "prompted", prompts={"query": "query: ", "document": "passage: "})
    encoder = BiEncoder(folder, device="cpu")
    scores = BiEncoderTeacher(str(folder), device="cpu").score(QUERIES, CANDIDATES, TEXTS)
    student = dense_candidates(BiEncoderScorer(encoder, 1.0), QUERIES, TEXTS, depth=3)
    for qid, docids in CANDIDATES.items():
        query = encoder.encode([QUERIES[qid]], role="query")[0]
        assert scores[qid] == pytest.approx(encoder.encode([TEXTS[d] for d in docids]) @ query, abs=1e-5)
        best = max(TEXTS, key=lambda d: float(encoder.encode([TEXTS[d]])[0] @ query))
        assert student[qid][0].docid == best


def test_cross_encoder_teacher_scores_pairs(cross_encoder_folder):
    teacher = open_teacher(str(cross_encoder_folder), device="cpu")
    assert isinstance(teacher, CrossEncoderTeacher)
    scores = teacher.score(QUERIES, CANDIDATES, TEXTS)
    model = CrossEncoder(cross_encoder_folder, device="cpu")
    for qid, docids in CANDIDATES.items():
        assert scores[qid] == pytest.approx(model.score([(QUERIES[qid], TEXTS[d]) for d in docids]), abs=1e-5)


def test_run_teacher_gives_its_scores_scaled(tmp_path):
    path = tmp_path / "teacher.trec"
    write_run({"q1": [Hit("a", 2.0), Hit("c", -1.0)]}, path)
    teacher = open_teacher(str(path), scale=3.0)
    assert isinstance(teacher, RunTeacher) and teacher.name == "teacher.trec"
    assert teacher.score(QUERIES, {"q1": ["c", "a"]}, TEXTS)["q1"].tolist() == [-3.0, 6.0]
    with pytest.raises(RankkitError, match="has no score for document 'b'"):
        teacher.score(QUERIES, {"q1": ["b"]}, TEXTS)
