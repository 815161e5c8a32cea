"""Data-parallel training under torchrun: 2 processes on CPU (gloo), started by the tests.

One DDP step of the bi-encoder with negatives gathered across processes equals one step of a
single process on the whole batch; a checkpoint written by 2 processes resumes the same with 1
or 2; the reranker and CET (both its models) train under DDP as in one process, and rank 0
alone writes. The default suite skips the resume test (slow: two launches)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import make_tiny_model, temp_leftovers

from rankkit.data.corpus import read_doc_texts
from rankkit.data.qrels import read_qrels
from rankkit.data.queries import read_queries
from rankkit.data.runs import Hit
from rankkit.encode.biencoder import BiEncoder
from rankkit.encode.crossencoder import CrossEncoder
from rankkit.errors import RankkitError
from rankkit.mining import TopN, candidates_from_run, mine
from rankkit.train import TrainConfig, distributed, train_biencoder, train_reranker
from rankkit.train.cet import CETConfig, train_cet
from rankkit.train.distributed import shard_of_batch, weight_of_shard
from rankkit.train.loop import CHECKPOINTS, LOG_FILE
from rankkit.train.losses import info_nce_loss
from rankkit.train.suspects import load_cet_models

# what each process runs: the job's trainer on the job's MinedSet; "interrupt_at_call": Ctrl-C in
# that call of the loss (both processes), so rank 0 checkpoints the step before
SCRIPT = """
import json, sys
from pathlib import Path

from rankkit.data.corpus import read_doc_texts
from rankkit.mining import MinedSet
from rankkit.train import TrainConfig, train_biencoder, train_reranker
from rankkit.train.biencoder import BiEncoderTask
from rankkit.train.cet import CETConfig, train_cet

job = json.loads(Path(sys.argv[1]).read_text())
mined, docs, config = MinedSet.read(job["mined"]), read_doc_texts(job["corpus"]), TrainConfig(**job["config"])
if job.get("interrupt_at_call"):
    calls, loss = [], BiEncoderTask.loss

    def interrupted(self, batch):
        calls.append(1)
        if len(calls) == job["interrupt_at_call"]:
            raise KeyboardInterrupt
        return loss(self, batch)

    BiEncoderTask.loss = interrupted
if job["trainer"] == "cet":
    train_cet(mined, docs, config, CETConfig(**job["cet"]))
elif job["trainer"] == "reranker":
    train_reranker(mined, docs, config)
else:
    train_biencoder(mined, docs, config, temperature=0.1)
"""


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


@pytest.fixture(scope="module")
def sample(sample_dir, tmp_path_factory):
    """(MinedSet file, MinedSet, doc texts): the sample, every document ranked by word overlap, the
    top 6 non-positives mined (with provenance, for CET's selection model)."""
    docs = read_doc_texts(sample_dir / "collection.tsv")
    queries = read_queries(sample_dir / "queries.tsv")
    run = {
        qid: sorted((Hit(d, float(len(_words(text) & _words(docs[d])))) for d in sorted(docs)), key=lambda h: -h.score)
        for qid, text in queries.items()
    }
    mined = mine(
        queries, read_qrels(sample_dir / "qrels.txt"), candidates_from_run(run, "overlap"), [TopN(6)], doc_texts=docs
    )
    path = tmp_path_factory.mktemp("mined") / "mined.jsonl"
    mined.write(path)
    return path, mined, docs


@pytest.fixture(scope="module")
def still_model(tmp_path_factory) -> Path:
    """The tiny model without dropout, so that runs on different processes compare exactly."""
    folder = make_tiny_model(tmp_path_factory.mktemp("still-model"))
    config = json.loads((folder / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def train_config(output: Path, model: Path, **changes) -> TrainConfig:
    settings = dict(
        output=str(output),
        model=str(model),
        max_steps=1,
        batch_size=4,
        negatives=2,
        lr=1e-4,
        warmup_ratio=0.0,
        device="cpu",
        max_length=32,
    )
    return TrainConfig(**{**settings, **changes})


def torchrun(
    tmp_path: Path, sample_dir: Path, mined: Path, config: TrainConfig, trainer: str = "biencoder", **job
) -> subprocess.CompletedProcess:
    """Run SCRIPT on 2 processes (torchrun --standalone, gloo on CPU)."""
    script, job_file = tmp_path / "train_job.py", tmp_path / f"job-{Path(config.output).name}.json"
    script.write_text(SCRIPT)
    job_file.write_text(
        json.dumps(
            {
                "trainer": trainer,
                "mined": str(mined),
                "config": config.__dict__,
                "corpus": str(sample_dir / "collection.tsv"),
                **job,
            }
        )
    )
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(script),
        str(job_file),
    ]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"},
    )


def succeeded(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]


def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}


def assert_close_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 1e-5) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name].float(), b[name].float(), atol=atol), name


def log_of(output: Path) -> list[dict]:
    return [json.loads(line) for line in (output / LOG_FILE).read_text().splitlines()]


# --- the helpers in one process ----------------------------------------------------------------------


def test_one_process_trains_on_the_whole_batch():
    batch = list(range(5))
    assert shard_of_batch(batch) == batch and weight_of_shard(batch, batch) == 1.0


def test_shards_of_a_batch_are_contiguous_and_weighted_by_size(monkeypatch):
    batch = list(range(5))
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    shards = []
    for rank in (0, 1):
        monkeypatch.setattr(distributed, "rank", lambda rank=rank: rank)
        shards.append(shard_of_batch(batch))
    assert shards == [[0, 1, 2], [3, 4]]  # concatenated in rank order: the batch
    # rank means times these weights, averaged over the 2 ranks, give the mean over the batch
    assert [weight_of_shard(shard, batch) for shard in shards] == [2 * 3 / 5, 2 * 2 / 5]
    with pytest.raises(RankkitError, match="a batch of 1 groups cannot be split over 2 processes.*Fix:"):
        shard_of_batch([0])


def test_info_nce_of_some_queries_against_every_positive_by_offset():
    generator = torch.Generator().manual_seed(0)
    queries, positives, negatives = (torch.randn(n, 3, generator=generator) for n in (4, 4, 6))
    each = torch.nn.functional.cross_entropy(
        queries @ torch.cat([positives, negatives]).T / 0.1, torch.arange(4), reduction="none"
    )
    # queries 2 and 3 (a second process's) against all 4 positives: their positives are rows 2 and 3
    assert float(info_nce_loss(queries[2:], positives, negatives, 0.1, offset=2)) == pytest.approx(
        float(each[2:].mean()), abs=1e-6
    )
    assert float(info_nce_loss(queries, positives, negatives, 0.1)) == pytest.approx(float(each.mean()), abs=1e-6)


# --- 2 processes -------------------------------------------------------------------------------------


def test_ddp_step_with_negatives_gathered_across_processes_equals_one_process_on_the_whole_batch(
    tmp_path, sample_dir, sample, still_model
):
    mined_file, mined, docs = sample
    # a global batch of 5 groups: 3 on rank 0, 2 on rank 1 (every rank's queries against all 5
    # positives and 10 mined negatives)
    config = train_config(tmp_path / "ddp", still_model, batch_size=5)
    succeeded(torchrun(tmp_path, sample_dir, mined_file, config))
    single = train_biencoder(mined, docs, train_config(tmp_path / "single", still_model, batch_size=5), temperature=0.1)
    trained = weights(BiEncoder(tmp_path / "ddp" / "model", device="cpu").model)
    expected = weights(BiEncoder(single, device="cpu").model)
    assert_close_weights(trained, expected)
    assert not all(torch.equal(trained[k], v) for k, v in weights(BiEncoder(still_model, device="cpu").model).items())
    ddp_log, single_log = log_of(tmp_path / "ddp"), log_of(tmp_path / "single")
    assert len(ddp_log) == 1  # rank 0 alone logs
    for key in ("loss", "grad_norm", "lr"):  # the loss of the whole batch, not of rank 0's share
        assert ddp_log[0][key] == pytest.approx(single_log[0][key], abs=1e-5)


@pytest.mark.slow  # about 40 s: two launches of 2 processes
def test_checkpoint_of_2_processes_resumes_the_same_with_1_or_2(tmp_path, sample_dir, sample, still_model):
    mined_file, mined, docs = sample
    stopped = tmp_path / "stopped"
    config = train_config(stopped, still_model, max_steps=2)
    result = torchrun(tmp_path, sample_dir, mined_file, config, interrupt_at_call=2)  # Ctrl-C in step 2
    assert result.returncode != 0 and "interrupted at step 1" in result.stderr, result.stderr[-3000:]
    assert (stopped / CHECKPOINTS / "step-1" / "state.pt").is_file()
    assert [r["step"] for r in log_of(stopped)] == [1]
    one, two = tmp_path / "one", tmp_path / "two"
    shutil.copytree(stopped, one)
    shutil.copytree(stopped, two)

    train_biencoder(mined, docs, train_config(one, still_model, max_steps=2), temperature=0.1)
    succeeded(torchrun(tmp_path, sample_dir, mined_file, train_config(two, still_model, max_steps=2)))
    whole = train_biencoder(mined, docs, train_config(tmp_path / "whole", still_model, max_steps=2), temperature=0.1)
    resumed_by_one = weights(BiEncoder(one / "model", device="cpu").model)
    assert_close_weights(resumed_by_one, weights(BiEncoder(two / "model", device="cpu").model))
    assert_close_weights(resumed_by_one, weights(BiEncoder(whole, device="cpu").model))  # as if never split
    assert [r["step"] for r in log_of(one)] == [r["step"] for r in log_of(two)] == [1, 2]
    assert log_of(one)[1]["loss"] == pytest.approx(log_of(two)[1]["loss"], abs=1e-5)


def without_head_bias(folder: Path) -> dict[str, torch.Tensor]:
    """A cross-encoder's weights but its new head's bias, which cancels in a listwise or pairwise
    loss (scores minus scores): its gradient is rounding noise, which Adam turns into a step of
    +-lr either way."""
    trained = weights(CrossEncoder(folder, device="cpu").model)
    del trained["classifier.bias"]
    return trained


def test_reranker_under_ddp_matches_one_process(tmp_path, sample_dir, sample, still_model):
    mined_file, mined, docs = sample
    succeeded(
        torchrun(
            tmp_path,
            sample_dir,
            mined_file,
            train_config(tmp_path / "ddp", still_model, max_steps=2),
            trainer="reranker",
        )
    )
    single = train_reranker(mined, docs, train_config(tmp_path / "single", still_model, max_steps=2))
    assert_close_weights(without_head_bias(tmp_path / "ddp" / "model"), without_head_bias(single))


def test_cet_trains_both_models_under_ddp_and_rank_0_saves_once(tmp_path, sample_dir, sample, still_model):
    mined_file, mined, docs = sample
    cet = {"relevance": "cross-encoder", "selection": "provenance", "debias_ratio": 3.0}
    config = train_config(tmp_path / "ddp", still_model, max_steps=2, checkpoint_every=1)
    succeeded(torchrun(tmp_path, sample_dir, mined_file, config, trainer="cet", cet=cet))
    single = train_cet(mined, docs, train_config(tmp_path / "single", still_model, max_steps=2), CETConfig(**cet))
    folder = tmp_path / "ddp" / "model"
    assert_close_weights(without_head_bias(folder / "relevance"), without_head_bias(single / "relevance"))
    # the selection model's output bias and its weights on features that are constant within a
    # group get rounding noise as gradients too: it is compared by its losses and gradient norms
    log, single_log = log_of(tmp_path / "ddp"), log_of(tmp_path / "single")
    assert [r["step"] for r in log] == [1, 2]  # rank 0 alone logs
    for ours, theirs in zip(log, single_log):
        for key in ("loss_relevance", "loss_selection", "grad_norm_relevance", "grad_norm_selection"):
            assert ours[key] == pytest.approx(theirs[key], rel=1e-4), (ours["step"], key)
    assert load_cet_models(folder, mined, device="cpu")[2] == 3.0  # the saved folder loads
    assert not (tmp_path / "ddp" / CHECKPOINTS).exists()  # rank 0 cleared its checkpoints once done
    assert temp_leftovers(tmp_path) == [] and temp_leftovers(tmp_path / "ddp") == []


@pytest.mark.slow  # two launches of `rankkit distill` (2 processes, then 1): about 25 s
def test_distillation_under_ddp_matches_one_process(tmp_path, sample_dir, still_model, other_tiny_model):
    # 3 rounds: round 2 mines from round 1's snapshot and deletes round 0's (rank 0 alone writes and deletes)
    rankkit = str(Path(sys.executable).parent / "rankkit")
    args = [
        "distill",
        "--teacher",
        str(other_tiny_model),
        "--student",
        str(still_model),
        "--queries",
        str(sample_dir / "queries.tsv"),
        "--corpus",
        str(sample_dir / "collection.tsv"),
        "--rounds",
        "3",
        "--queries-per-round",
        "4",
        "--batch-size",
        "4",
        "--depth",
        "12",
        "--hard-pool",
        "6",
        "--self-adversarial-rounds",
        "1",
        "--pl-temperature",
        "0.05",
        "--device",
        "cpu",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "--no-python"]
    for command, out in ((launch + [rankkit], tmp_path / "ddp"), ([rankkit], tmp_path / "single")):
        succeeded(
            subprocess.run([*command, *args, "-o", str(out)], capture_output=True, text=True, timeout=600, env=env)
        )
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    log, single_log = log_of(ddp), log_of(single)
    assert [r["step"] for r in log] == [1, 2, 3]  # rank 0 alone logs
    for ours, theirs in zip(log, single_log):  # the whole batch's loss and gradients, as in one process
        for key in ("loss_student", "loss_discriminator", "grad_norm_student", "grad_norm_discriminator"):
            # rel 1e-3: by step 3 the weights differ by the Adam noise below (losses by about 1e-4)
            assert ours[key] == pytest.approx(theirs[key], rel=1e-3), (ours["step"], key)
    # a weight whose gradient is rounding noise moves +-lr per Adam step either way: 3 steps of lr <= 2e-5
    assert_close_weights(
        weights(BiEncoder(ddp / "model", device="cpu").model),
        weights(BiEncoder(single / "model", device="cpu").model),
        atol=1.5e-4,
    )
    summary = json.loads((ddp / "distill.json").read_text())
    assert summary["knowledge"] == json.loads((single / "distill.json").read_text())["knowledge"]
    assert not (tmp_path / ".ddp.snapshots").exists() and temp_leftovers(tmp_path) == []
