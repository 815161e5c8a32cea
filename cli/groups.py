"""Typer parameters from config dataclasses: the one mechanism every command's options go through.

A command names the config it runs as a parameter annotated with the config's class (a default
instance gives the command its own defaults):

    @app.command()
    @friendly_errors
    @with_options
    def distill(config: DistillConfig) -> None:
        run_distill(config)

`with_options` gives Typer one option per `option(...)` field of the config (inherited groups and
nested groups included, each group in its own help panel) and hands the command the config built
from the values given. Options a user leaves out keep the config's own defaults, so the command
and a Python caller passing the same values build the same config.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import inspect
import types
import typing
from pathlib import Path
from typing import Any, Callable, List, Optional, Union

import typer

from rankkit.options import OptionSpec, option_spec

F = typing.TypeVar("F", bound=Callable[..., Any])


@dataclasses.dataclass(frozen=True)
class Only:
    """`Annotated[Group, Only("depth")]`: a command that takes just these options of a group."""

    names: tuple[str, ...]

    def __init__(self, *names: str) -> None:
        object.__setattr__(self, "names", names)


@dataclasses.dataclass
class _Slot:
    """One config (or nested group) of a command: its class, its options and nested slots."""

    cls: type
    default: Any  # the instance whose values the options not given keep (None: build from scratch)
    options: dict[str, str]  # parameter name (from the option's flag) -> field name
    nested: dict[str, "_Slot"]
    options_file: str | None  # the parameter of the group's settings file (e.g. --fusion-config)

    def build(self, given: dict[str, Any]) -> Any:
        values = {name: _plain(given.pop(parameter)) for parameter, name in self.options.items()}
        values = {name: value for name, value in values.items() if value is not None}
        values.update({name: slot.build(given) for name, slot in self.nested.items()})
        path = given.pop(self.options_file) if self.options_file else None
        if path is not None:
            return dataclasses.replace(self.cls.read(path), **values)
        if self.default is not None:
            return dataclasses.replace(self.default, **values)
        return self.cls(**values)


def _plain(value: Any) -> Any:
    """A repeated option's list as the tuple a frozen config holds; an empty one as not given."""
    if isinstance(value, list):
        return tuple(item.value if isinstance(item, enum.Enum) else item for item in value) or None
    return value


def is_option_group(cls: Any) -> bool:
    """Whether `cls` is a config dataclass with command-line options."""
    return (
        dataclasses.is_dataclass(cls)
        and isinstance(cls, type)
        and any(option_spec(f) or is_option_group(_hints(cls).get(f.name)) for f in dataclasses.fields(cls))
    )


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _panel(cls: type, name: str) -> str | None:
    """The help panel of field `name`: that of the group (in cls's bases) that declares it."""
    for klass in cls.__mro__:
        if name in klass.__dict__.get("__annotations__", {}):
            return klass.__dict__.get("panel")
    return None


def _cli_type(annotation: Any) -> Any:
    """The Typer annotation of a field: optional (a left-out option keeps the config's default),
    a tuple of items as a repeatable option."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (Union, types.UnionType):
        annotation = args[0] if len(args) == 1 else annotation
    if typing.get_origin(annotation) in (tuple, list):
        item = typing.get_args(annotation)[0]
        if typing.get_origin(item) is typing.Literal:  # Typer takes choices in a list only as an Enum
            item = enum.Enum("Choice", {value: value for value in typing.get_args(item)}, type=str)
        return Optional[List[item]]
    return Optional[annotation]


def range_check(spec: OptionSpec, integer: bool) -> Callable[[Any], Any] | None:
    """A parse-time check of the declared range (nan and inf refused too), naming the range."""
    if spec.low is None and spec.high is None and integer:
        return None
    wanted = ("an integer" if integer else "a finite number") + (f" {spec.range_text()}" if spec.range_text() else "")

    def check(value: Any) -> Any:
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if item is not None and spec.out_of_range(item):
                raise typer.BadParameter(f"{item:g} is out of range. Fix: pass {wanted}")
        return value

    return check


def _shown_default(default: Any) -> str | bool:
    """The default as --help shows it (False: not shown)."""
    if default is None or default == ():
        return False
    if isinstance(default, tuple):
        return ", ".join(map(str, default))
    return str(default)


def _parameter(
    field_name: str, annotation: Any, spec: OptionSpec, default: Any, required: bool, panel: str | None
) -> inspect.Parameter:
    """The Typer parameter of a field, named after its long flag (--pl-temperature: pl_temperature)."""
    flags = spec.flags or (f"--{field_name.replace('_', '-')}",)
    name = flags[0][2:].replace("-", "_")
    cli_type = _cli_type(annotation)
    value_type = typing.get_args(cli_type)[0]  # Optional[X] -> X
    item_type = typing.get_args(value_type)[0] if typing.get_origin(value_type) is list else value_type
    callback = range_check(spec, item_type is int) if item_type in (int, float) else None
    help_text = spec.help + (f" [{spec.range_text()}]" if spec.range_text() else "")
    if value_type is bool:  # a --flag/--no-flag pair always has a value: the config's default where not given
        pair = (f"{flags[0]}/--no-{flags[0][2:]}", *flags[1:])
        typer_option = typer.Option(default, *pair, help=help_text, rich_help_panel=panel)
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=typer_option, annotation=bool)
    shown = False if required or spec.hidden_default else _shown_default(default)
    if spec.argument:
        argument = typer.Argument(... if required else None, help=help_text, show_default=shown, callback=callback)
        return inspect.Parameter(
            name, inspect.Parameter.KEYWORD_ONLY, default=argument, annotation=value_type if required else cli_type
        )
    typer_option = typer.Option(
        ... if required else None, *flags, help=help_text, show_default=shown, rich_help_panel=panel, callback=callback
    )
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=typer_option, annotation=value_type if required else cli_type
    )


def _expand(cls: type, default: Any, only: tuple[str, ...] | None, parameters: list[inspect.Parameter]) -> _Slot:
    slot = _Slot(cls, default, {}, {}, None)
    hints = _hints(cls)
    for field in dataclasses.fields(cls):
        if only is not None and field.name not in only:
            continue
        spec = option_spec(field)
        field_default = (
            getattr(default, field.name)
            if default is not None
            else field.default
            if field.default is not dataclasses.MISSING
            else field.default_factory()
            if field.default_factory is not dataclasses.MISSING
            else None
        )
        if spec is None:
            if is_option_group(hints[field.name]):
                slot.nested[field.name] = _expand(hints[field.name], field_default, None, parameters)
            continue
        required = (
            default is None and field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        )
        parameter = _parameter(field.name, hints[field.name], spec, field_default, required, _panel(cls, field.name))
        parameters.append(parameter)
        slot.options[parameter.name] = field.name
    file_spec: OptionSpec | None = getattr(cls, "options_file", None)
    if only is None and file_spec is not None:
        name = file_spec.flags[0][2:].replace("-", "_")
        parameters.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Optional[Path],
                default=typer.Option(
                    None, *file_spec.flags, help=file_spec.help, rich_help_panel=getattr(cls, "panel", None)
                ),
            )
        )
        slot.options_file = name
    return slot


def with_options(command: F) -> F:
    """Give `command` one Typer option per option field of each config its parameters are
    annotated with (see the module docstring); other parameters stay as they are."""
    hints = typing.get_type_hints(command, include_extras=True)
    slots: dict[str, _Slot] = {}
    parameters: list[inspect.Parameter] = []
    for parameter in inspect.signature(command).parameters.values():
        annotation = hints.get(parameter.name, parameter.annotation)
        only = None
        if typing.get_origin(annotation) is typing.Annotated:
            annotation, *extras = typing.get_args(annotation)
            only = next((extra.names for extra in extras if isinstance(extra, Only)), None)
        if is_option_group(annotation):
            default = parameter.default if isinstance(parameter.default, annotation) else None
            if only is not None:
                default = default or annotation()
            slots[parameter.name] = _expand(annotation, default, only, parameters)
        else:
            if typing.get_origin(annotation) in (Union, types.UnionType):  # e.g. a list of choices
                annotation = _cli_type(annotation)
            parameters.append(parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=annotation))
    names = [p.name for p in parameters]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise TypeError(f"{command.__name__}: options declared twice: {', '.join(repeated)}")

    @functools.wraps(command)
    def wrapper(**given: Any) -> Any:
        built = {name: slot.build(given) for name, slot in slots.items()}
        return command(**built, **{name: _plain(value) for name, value in given.items()})

    wrapper.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    del wrapper.__wrapped__  # Typer must read the signature above, not the command's
    wrapper.option_slots = slots  # type: ignore[attr-defined]  # for the option-group table
    return wrapper  # type: ignore[return-value]


def _groups_of(slot: _Slot, only: set[str] | None = None) -> list[type]:
    """The option groups a slot draws its options from: the classes in its config's bases that
    declare options of their own, and those of its nested groups."""
    used = set(slot.options.values())
    found = [
        klass
        for klass in slot.cls.__mro__
        if "panel" in klass.__dict__ and used & set(klass.__dict__.get("__annotations__", {}))
    ]
    return found + [group for nested in slot.nested.values() for group in _groups_of(nested)]


def command_groups(app: typer.Typer, prefix: str = "rankkit") -> dict[str, list[type]]:
    """Each command of `app` (by its full name) and the option groups its options come from."""
    table: dict[str, list[type]] = {}
    for info in app.registered_commands:
        name = f"{prefix} {info.name or info.callback.__name__.replace('_', '-')}"
        slots = getattr(info.callback, "option_slots", {})
        table[name] = list(dict.fromkeys(group for slot in slots.values() for group in _groups_of(slot)))
    for group in app.registered_groups:
        table.update(command_groups(group.typer_instance, f"{prefix} {group.name}"))
    return dict(sorted(table.items()))


def option_groups_markdown(app: typer.Typer) -> str:
    """A Markdown table of every option group (its options) and the commands that use it."""
    usage: dict[type, list[str]] = {}
    for command, groups in command_groups(app).items():
        for group in groups:
            usage.setdefault(group, []).append(command)
    rows = ["| option group | class | options | commands |", "|---|---|---|---|"]
    for group, commands in sorted(usage.items(), key=lambda item: (item[0].panel, item[0].__name__)):
        own = [f for f in dataclasses.fields(group) if f.name in group.__dict__.get("__annotations__", {})]
        flags = [(option_spec(f).flags or (f"--{f.name.replace('_', '-')}",))[0] for f in own if option_spec(f)]
        if getattr(group, "options_file", None) is not None:
            flags.append(group.options_file.flags[0])
        rows.append(
            f"| {group.panel} | `{group.__module__}.{group.__qualname__}` | {' '.join(flags)} | "
            f"{', '.join(f'`{c}`' for c in commands)} |"
        )
    return "\n".join(rows) + "\n"
