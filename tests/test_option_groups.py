"""Options declared once: config dataclasses give the commands their options (cli/groups.py), so a
command and a Python caller with the same values build the same config, every option has help and
a range check where it has a range, and the option-group table in benchmarks/results is the code's."""

import dataclasses
from pathlib import Path
from typing import Annotated, Literal

import click
import pytest
import typer
from conftest import usage_error
from typer.testing import CliRunner

from rankkit.cli.app import app
from rankkit.cli.groups import Only, command_groups, option_groups_markdown, with_options
from rankkit.distill.config import DistillConfig
from rankkit.errors import RankkitError
from rankkit.mining.recipe import MiningRecipe
from rankkit.options import Runtime, check_options, option, same_option
from rankkit.retrieve.fusion import FusionConfig
from rankkit.retrieve.options import DenseQuery

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@dataclasses.dataclass(frozen=True, kw_only=True)
class Inner:
    panel = "Inner"
    depth: int = option(5, "How deep.", low=1)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Outer(Runtime):
    name: str = option(help="A required name.")
    ratio: float = option(0.5, "A share.", low=0, high=1)
    tags: tuple[str, ...] = option((), "Repeatable.", flags=("--tag", "-t"))
    kinds: tuple[Literal["a", "b"], ...] = option((), "Repeatable choices.", flags=("--kind",))
    flag: bool = option(True, "A flag that is on.")
    inner: Inner = dataclasses.field(default_factory=lambda: Inner(depth=7))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Narrow(Outer):
    ratio: float = same_option(Outer, "ratio", 0.25)


def capture(config_class: type) -> tuple[typer.Typer, list]:
    """A one-command app whose command records what it was given."""
    seen: list = []
    app_ = typer.Typer()

    @app_.command()
    @with_options
    def command(config: config_class, extra: int = typer.Option(1)) -> None:  # type: ignore[valid-type]
        seen.append((config, extra))

    return app_, seen


def test_a_config_is_built_from_the_options_given_over_its_defaults():
    app_, seen = capture(Outer)
    result = runner.invoke(
        app_,
        [
            "--name",
            "x",
            "-t",
            "a",
            "--tag",
            "b",
            "--kind",
            "b",
            "--no-flag",
            "--depth",
            "9",
            "--precision",
            "fp32",
            "--extra",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    assert seen == [
        (Outer(name="x", tags=("a", "b"), kinds=("b",), flag=False, inner=Inner(depth=9), precision="fp32"), 3)
    ]


def test_left_out_options_keep_the_config_defaults_nested_ones_included():
    app_, seen = capture(Outer)
    assert runner.invoke(app_, ["--name", "x"]).exit_code == 0
    assert seen[0][0] == Outer(name="x") and seen[0][0].inner.depth == 7


def test_a_config_built_on_another_shows_its_own_default():
    app_, seen = capture(Narrow)
    help_text = runner.invoke(app_, ["--help"], env={"COLUMNS": "200"}).output
    assert "A share. [>= 0 and <= 1]" in help_text and "0.25" in help_text
    runner.invoke(app_, ["--name", "x"])
    assert seen[0][0].ratio == 0.25


def test_required_and_range_are_checked_at_parse_time():
    app_, _ = capture(Outer)
    assert runner.invoke(app_, []).exit_code == 2  # --name is required
    usage_error(runner.invoke(app_, ["--name", "x", "--ratio", "1.5"]), "--ratio", "<= 1")
    usage_error(runner.invoke(app_, ["--name", "x", "--depth", "0"]), "--depth", ">= 1")
    usage_error(runner.invoke(app_, ["--name", "x", "--kind", "c"]), "--kind")


def test_an_option_declared_twice_in_one_command_is_refused():
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Clash:
        device: str = option("cpu", "Clashes with Runtime's.")

    def command(a: Runtime, b: Clash) -> None:
        pass

    with pytest.raises(TypeError, match="options declared twice: device"):
        with_options(command)


def test_only_takes_the_named_options_of_a_group():
    seen = []
    app_ = typer.Typer()

    @app_.command()
    @with_options
    def command(fusion: Annotated[FusionConfig, Only("depth")] = FusionConfig(depth=10)) -> None:
        seen.append(fusion)

    assert "--alpha" not in runner.invoke(app_, ["--help"]).output
    runner.invoke(app_, [])
    runner.invoke(app_, ["--fusion-depth", "3"])
    assert seen == [FusionConfig(depth=10), FusionConfig(depth=3)]


def test_a_settings_file_sits_under_the_options_given(tmp_path):
    FusionConfig(method="rrf", alpha=0.2, depth=50).write(tmp_path / "fusion.json")
    seen = []
    app_ = typer.Typer()

    @app_.command()
    @with_options
    def command(fusion: FusionConfig) -> None:
        seen.append(fusion)

    runner.invoke(app_, ["--fusion-config", str(tmp_path / "fusion.json"), "--alpha", "0.9"])
    assert seen == [FusionConfig(method="rrf", alpha=0.9, depth=50)]


def test_check_options_gives_a_python_caller_the_command_line_rules():
    check_options(Outer(name="x"))
    with pytest.raises(RankkitError, match=r"ratio=2 is out of range. Fix: pass a value >= 0 and <= 1"):
        check_options(Outer(name="x", ratio=2))
    with pytest.raises(RankkitError, match=r"depth=0 is out of range"):
        check_options(Outer(name="x", inner=Inner(depth=0)))
    with pytest.raises(RankkitError, match=r"unknown precision 'fp16'. Fix: use one of auto, fp32, bf16"):
        check_options(Outer(name="x", precision="fp16"))


def all_commands(group: click.Group = typer.main.get_command(app), path: str = "rankkit"):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from all_commands(command, f"{path} {name}")
        else:
            yield f"{path} {name}", command


@pytest.mark.parametrize("name, command", list(all_commands()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_option_has_help(name, command):
    # regression: --seed, --epochs (distill, sentiment) and --batch-size (sentiment train) had none
    silent = [p.opts[0] for p in command.params if not getattr(p, "help", None) and p.opts[0] != "--help"]
    assert silent == [], f"{name}: options without help: {silent}"


def test_the_dense_and_fusion_groups_reach_every_command_that_searches():
    # regression: tune fusion lacked --nprobe/--ef-search/--query-prompt, mine the GPU flags
    groups = command_groups(app)
    for command in ("rankkit search", "rankkit serve", "rankkit mine", "rankkit tune fusion"):
        assert DenseQuery in groups[command], command
    for command in ("rankkit search", "rankkit serve", "rankkit quickstart", "rankkit tune fusion"):
        assert FusionConfig in groups[command], command
    flags = {p.opts[0] for p in typer.main.get_command(app).commands["mine"].params}
    assert {"--gpu-shard", "--gpu-fp16", "--nprobe", "--ef-search", "--query-prompt"} <= flags


def test_quickstart_takes_the_fusion_config_and_checks_alpha(tmp_path):
    # regression: quickstart's help mentioned --fusion-config, which it did not have; --alpha 7 passed
    help_text = runner.invoke(app, ["quickstart", "--help"], env={"COLUMNS": "200"}).output
    assert "--fusion-config" in help_text and "--fusion-depth" in help_text
    usage_error(runner.invoke(app, ["quickstart", "--alpha", "7"]), "--alpha", "<= 1")


def test_fusion_defaults_in_help_are_fusion_configs_own():
    help_text = " ".join(runner.invoke(app, ["search", "--help"], env={"COLUMNS": "250"}).output.split())
    defaults = FusionConfig()
    assert f"[default: ({defaults.alpha:g})]" in help_text and f"[default: ({defaults.depth})]" in help_text


def test_distill_command_and_python_caller_build_the_same_config(monkeypatch, tmp_path):
    # regression: the command built distillation's NegativeConfig itself, so DistillConfig(depth=50)
    # and `rankkit distill --depth 50` mined with different windows
    from rankkit.distill import pipeline

    seen = []
    monkeypatch.setattr(pipeline, "distill", lambda config: seen.append(config) or tmp_path)
    args = [
        "distill",
        "--teacher",
        "t",
        "--queries",
        "q",
        "--corpus",
        "c",
        "-o",
        str(tmp_path / "o"),
        "--depth",
        "30",
        "--self-adversarial-negatives",
        "2",
    ]
    assert runner.invoke(app, args).exit_code == 0
    python = DistillConfig(
        teacher="t", queries="q", corpus="c", output=str(tmp_path / "o"), depth=30, self_adversarial_negatives=2
    )
    assert seen == [python]
    assert python.negative_knowledge().max_rank == 30 and python.negative_knowledge().self_adversarial_pool == 2


def test_mine_command_builds_the_recipe_a_python_caller_would(monkeypatch, tmp_path):
    from rankkit.mining import run

    seen = []

    class Mined:
        stats = {"queries_mined": 1, "negatives": 1}

    monkeypatch.setattr(run, "run_mining", lambda r: seen.append(r) or Mined())
    args = [
        "mine",
        "--data",
        "d",
        "-o",
        "m.jsonl",
        "-i",
        "a",
        "-i",
        "b",
        "--export",
        "st",
        "--gpu-fp16",
        "--nprobe",
        "4",
    ]
    assert runner.invoke(app, args).exit_code == 0
    assert seen == [
        MiningRecipe(data="d", output="m.jsonl", indexes=("a", "b"), exports=("st",), gpu_fp16=True, nprobe=4)
    ]


def test_the_option_group_table_is_the_codes():
    written = (ROOT / "benchmarks" / "results" / "option_groups.md").read_text()
    assert option_groups_markdown(app) in written, "regenerate: python benchmarks/option_groups.py"


def test_index_build_writes_to_indexes_corpus_kind_by_default():
    from rankkit.index.options import IndexBuild

    assert IndexBuild(corpus="data/collection.tsv", kind="bm25").folder() == Path("indexes/collection-bm25")
    assert IndexBuild(corpus="irds:beir/scifact").folder() == Path("indexes/beir-scifact-dense")
    assert IndexBuild(corpus="c.tsv", output="elsewhere/x").folder() == Path("elsewhere/x")
