"""benchmarks/distill_eval.py caches each variant's distillation in a folder; the folder's name must
change with every training setting, or a run with another --lr would silently reuse an old model."""

from __future__ import annotations

import sys
from argparse import Namespace
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_variant_folder_differs_for_every_training_setting(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import distill_eval

    monkeypatch.setattr(sys, "argv", ["distill_eval.py", "--holdout-queries", "100", "--eval-every", "40"])
    args = distill_eval.parse_args()
    base = distill_eval.variant_folder(Path("work"), "plain-kl", args)
    assert base.parent == Path("work") / "models" and base.name.startswith("plain-kl-")
    changes = {
        "train_queries": 2000,
        "confident_queries": 500,
        "depth": 50,
        "rounds": 12,
        "queries_per_round": 80,
        "batch_size": 16,
        "grad_accum": 2,
        "lr": 1e-4,
        "precision": "fp32" if args.precision == "bf16" else "bf16",
        "holdout_queries": 50,
        "eval_every": 20,
        "seed": 1,
    }
    for name, value in changes.items():
        changed = distill_eval.variant_folder(Path("work"), "plain-kl", Namespace(**{**vars(args), name: value}))
        assert changed != base, name
    assert distill_eval.variant_folder(Path("work"), "contrastive", args) != base
    assert "ga" not in base.name  # accumulation 1 is left out: caches from before the option keep their names
    assert "-c" not in base.name and "-s" not in base.name  # as are every query and seed 0


def test_plain_kl_17_encodes_as_many_items_per_group_as_contrastive(monkeypatch):
    """The equal-cost baseline: a plain group is the teacher's top document plus hard + self-adversarial
    drawn candidates; a contrastive group is a positive, the mined negatives and the drawn candidates."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import distill_eval

    from rankkit.distill.pipeline import DistillConfig

    def config(name: str) -> DistillConfig:
        return DistillConfig(teacher="t", queries="q", corpus="c", output="o", **distill_eval.VARIANTS[name])

    plain, matched, contrastive = config("plain-kl"), config("plain-kl-17"), config("contrastive")
    assert matched.mode == "plain" and matched.distill_loss == "kl"
    contrastive_items = (
        1 + contrastive.hard_negatives + contrastive.self_adversarial_negatives + contrastive.distill_candidates
    )
    assert 1 + matched.hard_negatives + matched.self_adversarial_negatives == contrastive_items == 17
    assert 1 + plain.hard_negatives + plain.self_adversarial_negatives == 9


def test_per_query_rows_have_a_row_per_query_and_a_column_per_model(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import distill_eval

    from rankkit.eval.measures import Evaluation

    def evaluation(values: dict[str, float]) -> dict[str, Evaluation]:
        return {"rerank": Evaluation(("nDCG@10",), {"nDCG@10": values}, ())}

    table = distill_eval.per_query_rows(
        {"before": evaluation({"q2": 0.5, "q1": 0.25}), "after": evaluation({"q1": 0.75})}, "rerank", "nDCG@10"
    )
    assert table == [{"query": "q1", "before": 0.25, "after": 0.75}, {"query": "q2", "before": 0.5, "after": None}]
