"""The plugin contract: hook specifications only.

A plugin is a module (or package) that defines `DIFFEDIT_PLUGIN_API` (a version specifier such as
">=1,<2" naming the plugin-API versions it supports) and implements some of these hooks with the
`hookimpl` marker:

    from diffedit.hookspecs import hookimpl

    @hookimpl
    def diffedit_register_tasks(registry):
        registry.add_task(TaskSpec(...))

Registrar hooks receive the `Registry` and add to it. They are called once, at start-up, while
plugins are discovered: keep them light (no torch, no model loading); name the code that does the
work as "module:function" strings, imported only when it is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from diffedit.tasks.registry import Registry

PROJECT = "diffedit"
PLUGIN_API_VERSION = "1.0"
ENTRY_POINT_GROUP = "diffedit.plugins"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def diffedit_register_tasks(registry: Registry) -> None:
    """Add tasks with `registry.add_task(TaskSpec(...))`.

    Called once at start-up. A TaskSpec names the task, declares its parameters as a dataclass
    (see `diffedit.tasks.params`), the document inputs it needs ("image", "mask"), what it returns
    ("layer" or "mask"), the checkpoint tasks it accepts, and its runner as "module:function"
    taking (TaskRequest, RunContext) and returning a TaskResult. Return nothing.
    """


@hookspec
def diffedit_register_samplers(registry: Registry) -> None:
    """Add samplers with `registry.add_sampler(SamplerInfo(...))`.

    Called once at start-up. A SamplerInfo names a diffusers scheduler class by its class name, the
    config overrides and `step()` keyword arguments that make it this sampler, and how many model
    evaluations it makes per step. Return nothing.
    """


@hookspec
def diffedit_register_model_loaders(registry: Registry) -> None:
    """Add checkpoint formats with `registry.add_model_loader(ModelLoaderInfo(...))`.

    Called once at start-up. `detect` ("module:function", path -> bool) says whether a folder or file
    is in this format without loading weights; `load` ("module:function", (path, device, dtype) ->
    model) loads it when a task runs. Return nothing.
    """


@hookspec
def diffedit_register_file_formats(registry: Registry) -> None:
    """Add image or document formats with `registry.add_file_format(FileFormatInfo(...))`.

    Called once at start-up. `reader` ("module:function", path -> Document) and `writer`
    ("module:function", (Document, path) -> None) may be empty when the format is read-only or
    write-only. Writers must write atomically. Return nothing.
    """


@hookspec
def diffedit_register_actions(registry: Registry) -> None:
    """Add menu actions with `registry.add_action(ActionInfo(...))`.

    Called once at start-up. The editor builds a menu entry under `menu` with `label`; choosing it
    calls `callback` ("module:function", Document -> None), which changes the document through its
    undoable operations. Plugins never import Qt. Return nothing.
    """
