"""`rankkit mine`: queries + qrels + candidates -> MinedSet (JSONL) and its statistics."""

from __future__ import annotations

import json

from rankkit.cli.errors import friendly_errors, stderr
from rankkit.cli.groups import with_options
from rankkit.mining.recipe import MiningRecipe


@friendly_errors
@with_options
def mine(recipe: MiningRecipe) -> None:
    """Mine negatives with provenance (window, filters, teacher, sampling) into a MinedSet."""
    from rankkit.mining.run import run_mining

    mined = run_mining(recipe)
    print(json.dumps(mined.stats, indent=2))
    if mined.stats["queries_mined"] == 0 and mined.stats.get("window_beyond_depth"):
        stderr.print(
            f"[yellow]warning:[/] no negatives: for {mined.stats['window_beyond_depth']} queries the window "
            f"starts (--min-rank {recipe.min_rank}) beyond the candidates' depth. Fix: a smaller "
            "--min-rank, or deeper candidates",
            highlight=False,
            soft_wrap=True,
        )
    print(f"wrote {mined.stats['negatives']} negatives for {mined.stats['queries_mined']} queries to {recipe.output}")
    for exported in mined.stats.get("exports", []):
        print(f"exported {exported['rows']} {exported['format']} rows to {exported['path']}")
