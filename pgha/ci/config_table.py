"""The README's configuration table, generated from the declared stack config.

Each row is one field of :class:`components.config.StackKeys`: its ``pgha:*`` key, its default, the
value the committed dev and prod stacks set (``Pulumi.<stack>.yaml``), what it allows (read from the
field's type and range) and its description. ``python -m pgha.ci.config_table`` (``make config-table``)
rewrites the table in README.md; ``--check`` exits 1 when README.md differs, and a test does the same,
so the table cannot drift from the code.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

PROJECT_DIR = Path(__file__).resolve().parents[2]
#: The table sits between these two lines of README.md.
BEGIN = (
    "<!-- BEGIN config table: generated from the fields of components/config.py by `make config-table`;"
    " edit their descriptions there -->"
)
END = "<!-- END config table -->"
STACKS = ("dev", "prod")
UNSET = "—"


def _text(value: Any) -> str:
    """A value as ``pulumi config set`` spells it, in backticks: true/false, digits, JSON for lists and maps."""
    if value is None:
        return UNSET
    if isinstance(value, BaseModel):
        value = value.model_dump(by_alias=True)
    if isinstance(value, bool):
        shown = "true" if value else "false"
    elif isinstance(value, (list, tuple, dict)):
        shown = json.dumps(list(value) if isinstance(value, tuple) else value)
    else:
        shown = str(value)
    return f"`{shown}`"


def _allowed(field: FieldInfo) -> str:
    """What a key allows, from its declared type and range."""
    kind = field.annotation
    if get_origin(kind) in (Union, types.UnionType):  # optional: unset is allowed too
        kind = next(arg for arg in get_args(kind) if arg is not type(None))
    if get_origin(kind) is Annotated:
        kind = get_args(kind)[0]
    low = next((m.ge for m in field.metadata if hasattr(m, "ge")), None)
    high = next((m.le for m in field.metadata if hasattr(m, "le")), None)
    odd = any(getattr(getattr(m, "func", None), "__name__", "") == "_odd" for m in field.metadata)
    if get_origin(kind) is Literal:
        return ", ".join(f"`{choice}`" for choice in get_args(kind))
    if kind is bool:
        return "`true`, `false`"
    if kind is int:
        return f"{'odd, ' if odd else ''}{low}\u2013{high}"  # an en dash
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return "JSON object"
    return {tuple: "JSON list", dict: "JSON map"}.get(get_origin(kind) or kind, "string")


def render_table(project_dir: Path = PROJECT_DIR) -> str:
    """The configuration table (Markdown) for every ``pgha:*`` key, from the fields' declarations."""
    from components.config import NAMESPACE, StackKeys

    stacks = {
        stack: (yaml.safe_load((project_dir / f"Pulumi.{stack}.yaml").read_text()) or {}).get("config") or {}
        for stack in STACKS
    }
    defaults = StackKeys()
    lines = [f"| key | default | {' | '.join(STACKS)} | allowed | meaning |", "|---|---|---|---|---|---|"]
    for name, field in StackKeys.model_fields.items():
        key = field.alias or name
        set_in = [_text(stacks[stack].get(f"{NAMESPACE}:{key}")) for stack in STACKS]
        lines.append(
            f"| `{key}` | {_text(getattr(defaults, name))} | {' | '.join(set_in)} | {_allowed(field)} "
            f"| {field.description} |"
        )
    return "\n".join(lines) + "\n"


def with_table(readme: str, table: str) -> str:
    """README.md's text with ``table`` between the BEGIN and END lines."""
    head, begin, rest = readme.partition(BEGIN + "\n")
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"README.md has no {BEGIN!r} ... {END!r} block")
    return head + begin + table + end + tail


def main(argv: list[str]) -> int:
    """Rewrite README.md's table; with ``--check``, exit 1 (writing nothing) when it differs."""
    readme = PROJECT_DIR / "README.md"
    current = readme.read_text()
    wanted = with_table(current, render_table())
    if wanted == current:
        return 0
    if "--check" in argv:
        print(
            "README.md's configuration table differs from components/config.py: run `make config-table`",
            file=sys.stderr,
        )
        return 1
    readme.write_text(wanted)
    print("README.md: configuration table updated")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
