"""Task parameters declared once, as a dataclass, from which forms, CLI flags and records derive.

    @dataclass
    class Params(SamplingParams):
        strength: float = param(0.75, minimum=0.0, maximum=1.0, help="how much to change")

The GUI reads `param_specs(Params)` to build its form, the CLI adds one flag per field, and the
generation record stores `params_to_record(p)`.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any


class ParamError(ValueError):
    """A parameter value is out of range or of the wrong kind; the message names it."""


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: type
    default: Any
    label: str
    help: str = ""
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    choices: tuple[Any, ...] | None = None
    widget: str = ""  # a hint for the form: "prompt", "seed", "slider", "sampler", "class"
    optional: bool = False


def param(
    default: Any,
    *,
    label: str = "",
    help: str = "",
    minimum: float | None = None,
    maximum: float | None = None,
    step: float | None = None,
    choices: tuple[Any, ...] | None = None,
    widget: str = "",
) -> Any:
    """A dataclass field carrying the UI/CLI description of one parameter."""
    meta = {"label": label, "help": help, "minimum": minimum, "maximum": maximum, "step": step,
            "choices": choices, "widget": widget}
    return field(default=default, metadata={"diffedit": meta})


@dataclass
class SamplingParams:
    """Parameters every diffusion task shares."""

    sampler: str = param("", label="Sampler", help="sampler name (empty: the model's default)", widget="sampler")
    steps: int = param(0, label="Steps", help="denoising steps (0: the model's default, 25 for most; repair "
                       "models: 1 is the most faithful, more add detail)", minimum=0, maximum=1000)
    seed: int | None = param(None, label="Seed", help="random seed (empty: a new random seed)", widget="seed",
                             minimum=0, maximum=2**63 - 1)


@dataclass
class ConditioningParams(SamplingParams):
    """Sampling plus what conditioned models take: a prompt (text models), a class (class models)
    and the classifier-free guidance scale. Models ignore what they were not trained on."""

    prompt: str = param("", label="Prompt", help="what to draw (text-conditioned models)", widget="prompt")
    negative_prompt: str = param("", label="Negative prompt", help="what to avoid (text models)", widget="prompt")
    class_name: str = param("", label="Class", help="what to draw (class-conditioned models; empty: any)",
                            widget="class")
    guidance_scale: float = param(3.0, label="Guidance", help="classifier-free guidance scale", minimum=0.0,
                                  maximum=30.0)


def _resolve_type(annotation: Any) -> tuple[type, bool]:
    """(base type, optional) for annotations like `int`, `int | None`, `str`."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0], True
    return annotation, False


def param_specs(params_cls: type) -> list[ParamSpec]:
    hints = typing.get_type_hints(params_cls)
    specs = []
    for f in dataclasses.fields(params_cls):
        meta = f.metadata.get("diffedit", {})
        typ, optional = _resolve_type(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else None
        if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        specs.append(ParamSpec(
            name=f.name, type=typ, default=default, optional=optional,
            label=meta.get("label") or f.name.replace("_", " ").capitalize(),
            help=meta.get("help", ""), minimum=meta.get("minimum"), maximum=meta.get("maximum"),
            step=meta.get("step"), choices=meta.get("choices"), widget=meta.get("widget", ""),
        ))
    return specs


def _coerce(spec: ParamSpec, value: Any) -> Any:
    if value is None or (isinstance(value, str) and value == "" and spec.optional):
        if spec.optional:
            return None
        raise ParamError(f"{spec.name} needs a value")
    try:
        if spec.type is bool:
            if isinstance(value, str):
                if value.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError(value)
                value = value.lower() in ("1", "true", "yes", "on")
            value = bool(value)
        elif spec.type is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            value = int(value)
        elif spec.type is float:
            value = float(value)
        elif spec.type is str:
            value = str(value)
    except (TypeError, ValueError):
        raise ParamError(f"{spec.name} must be {spec.type.__name__}, got {value!r}") from None
    if spec.minimum is not None and value < spec.minimum:
        raise ParamError(f"{spec.name} must be at least {spec.minimum}, got {value}")
    if spec.maximum is not None and value > spec.maximum:
        raise ParamError(f"{spec.name} must be at most {spec.maximum}, got {value}")
    if spec.choices is not None and value not in spec.choices:
        raise ParamError(f"{spec.name} must be one of {', '.join(map(str, spec.choices))}; got {value!r}")
    return value


def make_params(params_cls: type, values: dict[str, Any] | None = None) -> Any:
    """Build and validate a Params instance; unknown names and bad values raise ParamError."""
    values = dict(values or {})
    specs = {s.name: s for s in param_specs(params_cls)}
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise ParamError(f"unknown parameter(s) {', '.join(unknown)}; this task takes {', '.join(specs)}")
    kwargs = {name: _coerce(spec, values[name]) if name in values else spec.default for name, spec in specs.items()}
    for name, spec in specs.items():
        if name not in values and spec.default is not None:
            kwargs[name] = _coerce(spec, spec.default)
    return params_cls(**kwargs)


def params_to_record(params: Any) -> dict[str, Any]:
    return dataclasses.asdict(params)


def add_cli_arguments(parser: argparse.ArgumentParser, params_cls: type, skip: tuple[str, ...] = ()) -> None:
    """One `--flag` per parameter; values are validated later by `make_params`."""
    for spec in param_specs(params_cls):
        if spec.name in skip:
            continue
        flag = "--" + spec.name.replace("_", "-")
        text = spec.help or spec.label
        if spec.choices:
            text += f" (one of: {', '.join(map(str, spec.choices))})"
        if spec.minimum is not None or spec.maximum is not None:
            low, high = ("" if v is None else v for v in (spec.minimum, spec.maximum))
            text += f" [{low}..{high}]"
        text += f" (default: {spec.default!r})"
        parser.add_argument(flag, dest=spec.name, default=None, help=text, metavar=spec.type.__name__.upper())


def cli_values(namespace: argparse.Namespace, params_cls: type) -> dict[str, Any]:
    """The parameters given on the command line (others keep their defaults)."""
    return {s.name: getattr(namespace, s.name) for s in param_specs(params_cls)
            if getattr(namespace, s.name, None) is not None}
