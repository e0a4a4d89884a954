#!/usr/bin/env python3
"""Write the settings tables (docs/limits.md) and the status codes (docs/status-codes.md).

Settings come from :class:`reactor.config.Config` and the ``python -m reactor`` parser
(:func:`reactor.cli.build_parser`): each flag is matched to the Config field it sets by
changing the flag and watching which field :func:`reactor.cli.config_from_args` changes,
so the table cannot pair a flag with the wrong field. Every option that takes a number
is a row of the limits or the timeouts table, except the few in :data:`NOT_LIMITS`, so a
flag added anywhere in ``--help`` reaches limits.md without an edit here. Status codes are found in the
source of every ``reactor`` module: calls such as ``HTTPError(404, "...")``,
``Response(201, ...)`` or ``response_head(503, ...)``, ``status = NNN`` class
attributes, and literal ``HTTP/1.1 NNN`` status-lines.

    python3 docs/make_tables.py            # rewrite the generated blocks
    python3 docs/make_tables.py --check    # exit 1 if they are stale
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import pkgutil
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

import docgen

import reactor
from reactor import cli
from reactor.config import Config
from reactor.errors import busy

_MACHINE_SPECIFIC = re.compile(r",? now \d+")  # "--max-connections" help shows this machine's fd limit

#: Options that take a number but bound nothing. Every other option that takes a number
#: is a limit or a timeout and gets a row, so a new one cannot be left out of limits.md.
NOT_LIMITS = {
    "--port": "where to listen",
    "--fd": "which inherited socket to serve on",
    "--max-age": "what clients are told about caching",
    "--workers": "how many processes serve",
}


def _base_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    return parser.parse_args([])


def _changed_value(action: argparse.Action) -> Any:
    """A value for ``action`` that differs from its default and passes the Config."""
    default = action.default
    if isinstance(action, argparse._StoreTrueAction):
        return True
    if isinstance(action, argparse._StoreFalseAction):
        return False
    if isinstance(action, argparse._AppendAction):
        return ["example.test"]
    if action.type is not None and action.type.__name__ in ("_seconds",) or isinstance(default, float):
        return (default or 1.0) + 0.5
    if isinstance(default, int) or action.type is not None and action.type.__name__ in ("_positive_int", "_port"):
        return (default or 1) + 7
    return "/changed-for-docs"


def flag_fields(parser: argparse.ArgumentParser) -> Dict[str, Tuple[argparse.Action, str]]:
    """{Config field: (argparse action, title of its group)} for every flag that sets one."""
    base = cli.config_from_args(_base_args(parser))
    found: Dict[str, Tuple[argparse.Action, str]] = {}
    for group in parser._action_groups:
        for action in group._group_actions:
            if not action.option_strings or action.dest in ("help", "version"):
                continue
            args = _base_args(parser)
            setattr(args, action.dest, _changed_value(action))
            changed = cli.config_from_args(args)
            for field in dataclasses.fields(Config):
                if getattr(changed, field.name) != getattr(base, field.name):
                    found[field.name] = (action, group.title or "")
    return found


def number_type(action: argparse.Action) -> Optional[type]:
    """``int`` or ``float`` if the option takes a number (its type turns "1" into one), else None."""
    if not action.option_strings or not callable(action.type):
        return None
    try:
        value = action.type("1")
    except (argparse.ArgumentTypeError, TypeError, ValueError):
        return None
    return type(value) if type(value) in (int, float) else None


def _long_name(action: argparse.Action) -> str:
    return next(option for option in action.option_strings if option.startswith("--"))


def limit_options(parser: argparse.ArgumentParser) -> List[Tuple[argparse.Action, str]]:
    """(action, "limits" or "timeouts") for every option that is a limit or a timeout, in --help order.

    That is every option taking a number, except :data:`NOT_LIMITS`. A timeout is one in
    the timeouts group of ``--help`` or one that takes seconds (a float).
    """
    found = []
    for group in parser._action_groups:
        for action in group._group_actions:
            kind = number_type(action)
            if kind is None or _long_name(action) in NOT_LIMITS:
                continue
            timed = kind is float or (group.title or "").startswith("timeouts")
            found.append((action, "timeouts" if timed else "limits"))
    return found


def field_comments() -> Dict[str, str]:
    """The trailing ``# comment`` of each field line in ``class Config``."""
    source = Path(sys.modules[Config.__module__].__file__ or "").read_text(encoding="utf-8")
    comments = {}
    for match in re.finditer(r"^    (\w+): [^\n#]+#\s*(.+)$", source, re.MULTILINE):
        comments[match.group(1)] = match.group(2).strip()
    return comments


def _value(name: str, value: Any) -> str:
    """A default as the tables show it: ``8192 (8 KiB)``, ``10.0 s``, ``4``, ```None```."""
    if isinstance(value, bool) or value is None or isinstance(value, (tuple, str)):
        return "`%r`" % (value,)
    if name.endswith("_bytes") and isinstance(value, int) and value >= 1024 and value % 1024 == 0:
        kib = value // 1024
        return "%d (%s)" % (value, "%d MiB" % (kib // 1024) if kib % 1024 == 0 else "%d KiB" % kib)
    if name.endswith("_s"):
        return "%s s" % value
    return str(value)


def _default(field: "dataclasses.Field[Any]") -> str:
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        factory = field.default_factory  # type: ignore[misc]
        return "`%s.%s()`" % (factory.__module__, factory.__name__)
    return _value(field.name, field.default)


def _help(action: argparse.Action) -> str:
    return _MACHINE_SPECIFIC.sub("", action.help or "").replace("\n", " ")


def render_settings() -> Dict[str, str]:
    parser = cli.build_parser()
    flags = flag_fields(parser)
    field_of = {action.dest: name for name, (action, _title) in flags.items()}
    fields = {field.name: field for field in dataclasses.fields(Config)}
    comments = field_comments()
    rows: Dict[str, List[List[str]]] = {"limits": [], "timeouts": []}
    for action, kind in limit_options(parser):
        name = field_of.get(action.dest)
        if name is not None:
            default = _default(fields[name])
        else:  # not a Config field (e.g. the supervisor's --worker-timeout)
            seconds = number_type(action) is float
            default = _value(action.dest + ("_s" if seconds else ""), action.default)
        flag = "`%s`" % "`, `".join(action.option_strings)
        rows[kind].append([flag, "`%s`" % name if name else "—", default, _help(action)])
    unflagged = [
        ["`%s`" % field.name, _default(field), comments.get(field.name, "")]
        for field in dataclasses.fields(Config)
        if field.name not in flags and field.name != "root"
    ]
    not_limits = ", ".join("`%s` (%s)" % item for item in NOT_LIMITS.items())
    header = ["flag", "Config field", "default", "meaning"]
    return {
        "limits-table": docgen.table(header, rows["limits"]),
        "timeouts-table": docgen.table(header, rows["timeouts"]),
        "unflagged-table": docgen.table(["Config field", "default", "meaning"], unflagged),
        "not-limits": "Options that take a number but bound nothing: %s.\n" % not_limits,
    }


# -- status codes ----------------------------------------------------------------------

_CALLS = re.compile(r"(Error|^Response|^error|^response_head|^status_line)$")
_STATUS_LINE = re.compile(r"HTTP/1\.[01] ([1-5]\d\d) ")


def _text(node: Optional[ast.AST]) -> str:
    """The reason a call gives: a string literal, or the format string of ``"..." % x``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return _text(node.left)
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{…}" for v in node.values)  # type: ignore[misc]
    return ""


_BUSY_REASON: str = busy.__defaults__[0]  # type: ignore[index]


class _StatusScan(ast.NodeVisitor):
    def __init__(self, module: str) -> None:
        self.scope = [module]
        self._in_function = False
        self.found: List[Tuple[int, str, str]] = []  # (status, where, reason)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    def visit_FunctionDef(self, node: Any) -> None:
        # A function nested in a function is reported as its outer function, which
        # is something a reader can look up (``Connection.run_in_pool``, not ``...done``).
        nested = self._in_function
        if not nested:
            self.scope.append(node.name)
        self._in_function = True
        self.generic_visit(node)
        self._in_function = nested
        if not nested:
            self.scope.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def _add(self, status: Any, reason: str) -> None:
        if isinstance(status, int) and not isinstance(status, bool) and 100 <= status <= 599:
            self.found.append((status, ".".join(self.scope), reason))

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name == "busy":  # reactor.errors.busy(reason=...): a 503, from the caller
            reason = node.args[0] if node.args else None
            self._add(503, _text(reason) if reason is not None else _BUSY_REASON)
        if _CALLS.search(name):
            args = list(node.args)
            status = args[0] if args else next((k.value for k in node.keywords if k.arg == "status"), None)
            if isinstance(status, ast.Constant):
                reason = args[1] if len(args) > 1 else next((k.value for k in node.keywords if k.arg == "reason"), None)
                self._add(status.value, _text(reason))
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        if any(isinstance(t, ast.Name) and t.id == "status" for t in node.targets) and isinstance(
            node.value, ast.Constant
        ):
            if len(self.scope) > 1:  # a class attribute such as ``status = 431``
                self._add(node.value.value, "")
        named = len(self.scope) == 1 and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
        if named:  # a module constant such as ``_CONTINUE = b"HTTP/1.1 100 Continue..."``
            self.scope.append(node.targets[0].id)  # type: ignore[attr-defined]
        self.generic_visit(node)
        if named:
            self.scope.pop()

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, (str, bytes)):
            text = node.value.decode("latin-1") if isinstance(node.value, bytes) else node.value
            match = _STATUS_LINE.match(text)
            if match:
                self._add(int(match.group(1)), "")


def status_codes() -> Dict[int, Tuple[Set[str], List[str]]]:
    """{status: (places that send it, reasons given)} over every module of ``reactor``."""
    root = Path(reactor.__file__).parent
    modules = ["reactor"] + [info.name for info in pkgutil.walk_packages([str(root)], prefix="reactor.")]
    codes: Dict[int, Tuple[Set[str], List[str]]] = {}
    for module in sorted(modules):
        relative = module.split(".")[1:]
        path = root.joinpath(*relative)
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        scan = _StatusScan(module)
        scan.visit(ast.parse(path.read_text(encoding="utf-8")))
        for status, where, reason in scan.found:
            places, reasons = codes.setdefault(status, (set(), []))
            places.add(where)
            if reason and reason not in reasons:
                reasons.append(reason)
    return codes


def render_status_codes() -> str:
    rows = []
    for status, (places, reasons) in sorted(status_codes().items()):
        rows.append(
            [
                str(status),
                ", ".join("`%s`" % place for place in sorted(places)),
                "; ".join(reasons),
            ]
        )
    # No reason-phrase column: http.HTTPStatus phrases differ between Python versions (413, 414, 422).
    return docgen.table(["status", "sent by", "reasons given"], rows)


def render() -> docgen.Blocks:
    return {"limits.md": render_settings(), "status-codes.md": {"status-codes-table": render_status_codes()}}


if __name__ == "__main__":
    sys.exit(docgen.main(render))
