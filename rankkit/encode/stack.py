"""A sentence-transformers model's module stack, loaded by sentence-transformers itself.

A folder with modules.json is loaded with `SentenceTransformer`, so its max sequence length
(sentence_bert_config.json, else tokenizer_config.json's model_max_length capped at the model's
max_position_embeddings), prompts, pooling, Dense projections and normalisation are read exactly
where sentence-transformers reads them. rankkit then runs the transformer itself, in its
length-sorted token-budget batches, and hands the token embeddings to the modules after it.
Modules that need more than token embeddings and an attention mask (routers, word-level models,
custom code) are refused by name. A plain transformers folder gets mean pooling and normalisation.
"""

from __future__ import annotations

from pathlib import Path

import torch

from rankkit.encode.models import read_json
from rankkit.errors import RankkitError

# modules after the Transformer that take {token_embeddings, attention_mask[, prompt_length]} or
# {sentence_embedding} and nothing else: rankkit can run them on its own batches
SUPPORTED_HEAD_MODULES = ("Pooling", "Dense", "Normalize", "LayerNorm", "Dropout")
QUERY_PROMPT_NAMES = ("query",)
PASSAGE_PROMPT_NAMES = ("document", "passage", "corpus")


def _module_class_name(entry: dict) -> str:
    return str(entry.get("type", "")).rsplit(".", 1)[-1]


def check_modules(model_dir: Path) -> None:
    """Refuse a modules.json whose stack rankkit cannot run, naming the module, before loading it."""
    modules = read_json(model_dir / "modules.json")
    if modules is None:
        return
    where = model_dir / "modules.json"
    if not modules or _module_class_name(modules[0]) != "Transformer":
        first = modules[0].get("type") if modules else "nothing"
        raise RankkitError(
            f"{where}: the first module is {first}, not a Transformer, so rankkit cannot run this "
            "model. Fix: encode it with sentence-transformers, or use a Transformer-based model"
        )
    for entry in modules[1:]:
        if _module_class_name(entry) not in SUPPORTED_HEAD_MODULES:
            raise RankkitError(
                f"{where}: module {entry.get('name')} of type {entry.get('type')} is not one rankkit "
                f"can run (it runs Transformer, then {', '.join(SUPPORTED_HEAD_MODULES)}). "
                "Fix: encode this model with sentence-transformers"
            )
    config = read_json(model_dir / modules[0].get("path", "") / "sentence_bert_config.json") or {}
    task = config.get("transformer_task", "feature-extraction")
    if task != "feature-extraction":
        raise RankkitError(
            f"{where}: its Transformer runs the task {task!r}; rankkit's bi-encoder runs "
            "feature-extraction only. Fix: encode this model with sentence-transformers"
        )


def load_stack(model_dir: Path, device: torch.device):
    """The model as a `SentenceTransformer` (an nn.Sequential of modules) on `device`."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    check_modules(model_dir)
    if (model_dir / "modules.json").is_file():
        return SentenceTransformer(str(model_dir), device=str(device), local_files_only=True)
    transformer = Transformer(str(model_dir))
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    return SentenceTransformer(modules=[transformer, pooling, Normalize()], device=str(device))


def resolve_prompt(prompts: dict[str, str], default_prompt_name: str | None, role: str, override: str | None) -> str:
    """The prompt sentence-transformers' encode_query / encode_document would prepend: an explicit
    prompt, else the role's named prompt ('query'; 'document', 'passage' or 'corpus'), else the
    default prompt; '' for none."""
    if override is not None:
        return override
    names = QUERY_PROMPT_NAMES if role == "query" else PASSAGE_PROMPT_NAMES
    name = next((n for n in names if n in prompts), default_prompt_name)
    return prompts.get(name, "") if name is not None else ""


def prompt_length(tokenizer, prompt: str) -> int:
    """Tokens of `prompt` at the start of a prompted text, as sentence-transformers counts them
    (its tokenization without a trailing special token), for pooling that excludes the prompt."""
    ids = tokenizer(prompt)["input_ids"]
    return len(ids) - 1 if ids and ids[-1] in tokenizer.all_special_ids else len(ids)


def describe_pooling(stack) -> tuple[str, bool]:
    """(pooling mode, whether vectors are normalised) for manifests."""
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling

    pooling = next((m for m in stack if isinstance(m, Pooling)), None)
    mode = pooling.pooling_mode if pooling is not None else "none"
    mode = mode if isinstance(mode, str) else "+".join(mode)
    return mode, isinstance(stack[-1], Normalize)
