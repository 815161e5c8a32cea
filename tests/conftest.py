"""Shared fixtures: tiny randomly initialised models (seconds, not minutes) and paths to data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rankkit.data.collection import SAMPLE_DIR, shared_data_root
from rankkit.encode.models import resolve_model_dir

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# --precision auto is fp32 in the tests on every CPU (as on one without bf16), so their figures do not
# depend on the machine; tests of bf16 itself ask for the `native_bf16` fixture.
os.environ.setdefault("RANKKIT_NATIVE_BF16", "0")


@pytest.fixture
def native_bf16(monkeypatch):
    """bf16 as the CPU offers it: the test is skipped on a CPU without native bfloat16."""
    import torch

    from rankkit.encode.precision import NATIVE_BF16_ENV, hardware_bf16

    if not hardware_bf16(torch.device("cpu")):
        pytest.skip("this CPU has no native bfloat16")
    monkeypatch.delenv(NATIVE_BF16_ENV, raising=False)


def make_tiny_model(
    folder: Path, hidden: int = 32, seed: int = 0, pooling: str = "mean", normalize: bool = True
) -> Path:
    """Save a 2-layer BERT with random weights, MiniLM's tokenizer and sentence-transformers
    pooling files into `folder`; loads in transformers and sentence-transformers."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_dir("default"))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": hidden,
                "pooling_mode_mean_tokens": pooling == "mean",
                "pooling_mode_cls_token": pooling == "cls",
                "pooling_mode_max_tokens": pooling == "max",
            }
        )
    )
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 64, "do_lower_case": False}))
    return folder


def make_tiny_splade(folder: Path, seed: int = 0) -> Path:
    """Save a 2-layer BERT masked-language model with random weights and MiniLM's tokenizer: a
    SPLADE model. Its output bias of -4 leaves about 90 terms per sample passage and 10 per query
    (at 0 every one of the 30,522 terms would get a weight)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_dir("default"))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        initializer_range=0.2,  # logits of about 1
    )
    model = BertForMaskedLM(config)
    with torch.no_grad():
        model.cls.predictions.bias.fill_(-4.0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def make_spread_model(folder: Path) -> Path:
    """The tiny model with its transformer weights scaled up (and a wide init for a new scoring
    head), so that a randomly initialised cross-encoder scores passages far apart instead of within
    float noise of each other: rankings compare robustly."""
    import torch
    from transformers import BertModel

    make_tiny_model(folder)
    model = BertModel.from_pretrained(folder)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.ndim > 1 and "embeddings" not in name:
                parameter.mul_(5.0)
    model.config.initializer_range = 1.0
    model.save_pretrained(folder)
    return folder


GPT2_EOS = "<|endoftext|>"


def make_tiny_gpt2(folder: Path, eos: str | None = GPT2_EOS) -> Path:
    """A 2-layer GPT-2 with random weights and a 400-token byte-level BPE tokenizer trained on the
    sample passages: like GPT-2, no padding token (and, with eos=None, no end-of-sequence token)."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    from rankkit.data.corpus import read_doc_texts

    torch.manual_seed(0)
    bpe = ByteLevelBPETokenizer()
    texts = list(read_doc_texts(SAMPLE_DIR / "collection.tsv").values())
    bpe.train_from_iterator(texts, vocab_size=400, special_tokens=[eos] if eos else [])
    tokenizer = GPT2TokenizerFast(tokenizer_object=bpe, eos_token=eos, bos_token=eos, unk_token=eos)
    assert tokenizer.pad_token is None
    tokenizer.save_pretrained(folder)
    eos_id = tokenizer.convert_tokens_to_ids(eos) if eos else None
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=128,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
    )
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


def assert_file_error(excinfo: pytest.ExceptionInfo, path: Path, line: int | None, *fragments: str) -> None:
    """The error names the file (and line), says how to fix it, and contains every fragment."""
    message = str(excinfo.value)
    where = f"{path}:{line}" if line is not None else str(path)
    assert where in message, message
    assert "Fix:" in message, message
    for fragment in fragments:
        assert fragment in message, message


def usage_error(result, option: str, *fragments: str) -> str:
    """A Typer/Click usage error caught at parse time: exit status 2, the option named, each
    fragment present (the allowed range or choices), no traceback. Returns the message as one line
    (the panel's borders and wrapping removed)."""
    import re

    assert result.exit_code == 2, f"exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.stderr).split())
    assert "Invalid value for" in text and f"'{option}'" in text, text
    for fragment in fragments:
        assert fragment in text, text
    return text


def temp_leftovers(folder: Path) -> list[str]:
    """Temporary files an atomic write left behind (there should be none)."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random bi-encoder folder (hidden size 32, mean pooling, normalised)."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_splade(tmp_path_factory) -> Path:
    """A tiny random SPLADE model folder (see make_tiny_splade)."""
    return make_tiny_splade(tmp_path_factory.mktemp("tiny-splade"))


@pytest.fixture(scope="session")
def other_tiny_model(tmp_path_factory) -> Path:
    """A second tiny model with different weights and dimension (for mismatch tests)."""
    return make_tiny_model(tmp_path_factory.mktemp("other-tiny-model"), hidden=48, seed=1)


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The bundled sample collection folder."""
    return SAMPLE_DIR


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (or $RANKKIT_DATA); tests that need it skip with a reason when absent."""
    root = shared_data_root()
    if not (root / "dl19" / "collection.tsv").is_file():
        pytest.skip(f"shared data not found at {root}; set RANKKIT_DATA to the data folder")
    return root
