"""`diffedit plugins`, `diffedit tasks` and `diffedit samplers`: what the installed plugins offer."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from diffedit.plugins import PluginHost, set_plugin_enabled
from diffedit.tasks.params import param_specs


def plugins_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="diffedit plugins",
                                     description="List, enable, disable, install and uninstall plugins.")
    sub = parser.add_subparsers(dest="action", required=True)
    lister = sub.add_parser("list", help="list plugins with their status, hooks and registrations")
    lister.add_argument("--json", action="store_true", help="print JSON")
    lister.add_argument("--verbose", "-v", action="store_true", help="show full tracebacks of failed plugins")
    for action in ("enable", "disable"):
        p = sub.add_parser(action, help=f"{action} a plugin by name (remembered in the settings)")
        p.add_argument("name")
    installer = sub.add_parser("install", help="install a pure-Python plugin (wheel, project or package folder, "
                                               ".py file) into the user plugin folder, without pip")
    installer.add_argument("path")
    remover = sub.add_parser("uninstall", help="remove a plugin installed with 'plugins install'")
    remover.add_argument("name")
    args = parser.parse_args(argv)
    if args.action in ("install", "uninstall"):
        return _install_or_remove(args.action, args.path if args.action == "install" else args.name)
    if args.action in ("enable", "disable"):
        set_plugin_enabled(args.name, args.action == "enable")
        print(f"plugin '{args.name}' {args.action}d; this takes effect at the next start")
        return 0
    host = PluginHost()
    host.discover()
    records = host.list_plugins()
    if args.json:
        print(json.dumps([r.to_json() for r in records], indent=2))
        return 0
    for r in records:
        print(f"{r.name} {r.version or ''} [{r.source}] {r.status}")
        if r.hooks:
            print(f"    hooks: {', '.join(r.hooks)}")
        if r.registered:
            print(f"    registered: {', '.join(r.registered)}")
        if r.error:
            lines = r.error.strip().splitlines()
            print("    error: " + ("\n           ".join(lines) if args.verbose else lines[-1]))
    return 0


def _install_or_remove(action: str, target: str) -> int:
    from diffedit.plugin_install import PluginInstallError, install, uninstall

    try:
        item = install(target) if action == "install" else uninstall(target)
    except (PluginInstallError, OSError) as exc:
        print(f"diffedit plugins {action}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    provides = f" (entry points: {'; '.join(item.entry_points)})" if item.entry_points else ""
    done = "installed into" if action == "install" else "removed from"
    label = " ".join(x for x in (item.name, item.version) if x)
    print(f"{label} {done} {item.path}{provides}; this takes effect at the next start")
    return 0


def tasks_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="diffedit tasks", description="List the tasks plugins registered.")
    parser.add_argument("--json", action="store_true", help="print JSON, with each task's parameters")
    args = parser.parse_args(argv)
    host = PluginHost()
    registry = host.discover()
    rows = []
    for spec in registry.tasks.values():
        params = [
            {"name": p.name, "type": p.type.__name__, "default": p.default, "label": p.label, "help": p.help,
             "minimum": p.minimum, "maximum": p.maximum, "choices": list(p.choices) if p.choices else None}
            for p in param_specs(spec.params)
        ]
        rows.append({"name": spec.name, "label": spec.label, "description": spec.description,
                     "inputs": list(spec.inputs), "output": spec.output, "model_tasks": list(spec.model_tasks),
                     "plugin": registry.owners.get(("task", spec.name), ""), "params": params})
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
    else:
        for row in rows:
            print(f"{row['name']:<16} {row['description']}  [{row['plugin']}]")
    _warn_failed(host)
    return 0


def samplers_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="diffedit samplers", description="List the samplers plugins registered.")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    host = PluginHost()
    registry = host.discover()
    rows = [{"name": s.name, "label": s.label, "description": s.description, "scheduler": s.scheduler,
             "evaluations_per_step": s.evaluations_per_step, "plugin": registry.owners.get(("sampler", s.name), "")}
            for s in registry.samplers.values()]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(f"{row['name']:<18} {row['description']}")
    _warn_failed(host)
    return 0


def _warn_failed(host: PluginHost) -> None:
    for r in host.failed():
        print(f"warning: plugin '{r.name}' {r.status}: {r.error.strip().splitlines()[-1]}", file=sys.stderr)
