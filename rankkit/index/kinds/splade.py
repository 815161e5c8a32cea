"""The splade kind: a Lucene impact index of a SPLADE model's term weights, searched with the
queries that model encodes (rankkit.index.splade)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rankkit.index.kinds.registry import IndexKind, build_command, register
from rankkit.index.options import EncoderBuild, LuceneBuild
from rankkit.options import Inference

if TYPE_CHECKING:
    from rankkit.index.manifest import Manifest
    from rankkit.index.options import IndexBuild
    from rankkit.retrieve.base import Retriever
    from rankkit.retrieve.options import QueryOptions

DEFAULT_MODEL = "splade-tiny"  # `rankkit models fetch splade-tiny`


def build(config: IndexBuild) -> tuple[Manifest, Path]:
    from rankkit.encode.backend import sample_texts
    from rankkit.encode.splade import SpladeEncoder
    from rankkit.index.splade import build_splade_index

    out = config.folder()
    model = DEFAULT_MODEL if config.model == "default" else config.model
    sample = sample_texts(config.corpus, config.format) if config.exported else None
    encoder = SpladeEncoder(model, device=config.device, precision=config.precision, inference=config, sample=sample)
    manifest = build_splade_index(config.corpus, out, encoder, config.format, config.threads, config.overwrite)
    return manifest, out


def open_splade(folder: Path, query: QueryOptions) -> Retriever:
    from rankkit.retrieve.splade import SpladeRetriever

    runtime = query.get(Inference)
    return SpladeRetriever(folder, device=runtime.device, precision=runtime.precision, inference=runtime)


def verify(folder: Path, manifest: Manifest) -> list[str]:
    from rankkit.index.splade import open_impact_searcher

    open_impact_searcher(folder)  # opens the Lucene segments, checks the count
    return []


def rebuild(folder: Path, manifest: Manifest) -> str:
    return build_command(folder, manifest, options=f" --model {manifest.model}")


def check_served(folder: Path, manifest: Manifest, query: QueryOptions) -> None:
    """The model's folder is there and whole (it loads in the background)."""
    from rankkit.encode.models import resolve_model_dir

    resolve_model_dir(manifest.model or "")


SPLADE = register(
    IndexKind(
        name="splade",
        description="a Lucene impact index of a SPLADE model's term weights",
        required_files=("lucene",),
        open=open_splade,
        verify=verify,
        build=build,
        build_options=(EncoderBuild, LuceneBuild),
        rebuild=rebuild,
        check_served=check_served,
        query_model=True,
    )
)
