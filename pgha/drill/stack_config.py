"""After a promotion: the stack config change that makes the program declare what now exists.

No Pulumi CLI runs here, so ``--update-config`` edits ``Pulumi.<stack>.yaml`` in place, touching
only the one key's line (comments, order and every other key stay byte for byte), and the
output always names the equivalent ``pulumi config set`` command for a machine that has the CLI.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ConfigChange:
    """One ``pgha:*`` key to set, and why."""

    key: str
    value: str
    reason: str

    def pulumi_command(self, stack: str) -> str:
        """The equivalent Pulumi CLI command."""
        return f"pulumi config set --stack {stack} {self.key} {self.value}"


def announce_change(
    change: ConfigChange, stack: str, stack_file: Path, *, update: bool, say: Callable[[str], None]
) -> str:
    """Tell the operator the config change a promotion calls for, the Pulumi CLI command for it and why the next
    ``pulumi up`` needs ``--refresh``; with ``update``, write it into ``stack_file`` (else say how to).
    Returns the change as the drill's report records it."""
    say(f"stack config: {change.key}: {change.value} - {change.reason}")
    say(f"  with the Pulumi CLI: {change.pulumi_command(stack)}")
    say(
        f"  then pulumi up --refresh --stack {stack}: the refresh first reads the promoted instance (no "
        "source any more); a plain pulumi up would ask the provider to promote it again, which can fail on "
        "an instance already promoted"
    )
    if update:
        old = set_stack_value(stack_file, change.key, change.value)
        say(
            f"  updated {stack_file}: {change.key}: {change.value} (was {old or 'unset'}); "
            f"see it with pgha plan --stack {stack}, then pulumi up --refresh --stack {stack}"
        )
    else:
        say("  or run this drill with --update-config to write it into " + str(stack_file))
    return f"{change.key}: {change.value} ({change.pulumi_command(stack)})"


_TOP_LEVEL = re.compile(r"^[^\s#]")


def set_stack_value(path: Path, key: str, value: str) -> str | None:
    """Set ``key: value`` under ``config:`` of a Pulumi stack file, in place; returns the old value (or None).

    Only scalar values are handled (what a promotion changes). An existing line keeps its
    indentation and trailing comment; a new key is added after the last line of the ``config:``
    block with the indentation of its other keys.
    """
    lines = path.read_text().splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if re.match(r"^config:\s*(#.*)?$", line)), None)
    if start is None:
        text = "".join(lines)
        path.write_text(text + ("" if not text or text.endswith("\n") else "\n") + f"config:\n  {key}: {value}\n")
        return None
    end = next((i for i in range(start + 1, len(lines)) if _TOP_LEVEL.match(lines[i])), len(lines))
    pattern = re.compile(rf"^(\s+){re.escape(key)}:(\s*)([^#\n]*?)(\s*#.*)?(\r?\n)?$")
    for i in range(start + 1, end):
        match = pattern.match(lines[i])
        if match:
            old = match[3].strip() or None
            lines[i] = f"{match[1]}{key}: {value}{match[4] or ''}{match[5] or ''}"
            path.write_text("".join(lines))
            return old
    content = [i for i in range(start + 1, end) if lines[i].strip() and not lines[i].lstrip().startswith("#")]
    indent = lines[content[0]][: len(lines[content[0]]) - len(lines[content[0]].lstrip())] if content else "  "
    last = content[-1] if content else start
    if not lines[last].endswith("\n"):
        lines[last] += "\n"
    lines.insert(last + 1, f"{indent}{key}: {value}\n")
    path.write_text("".join(lines))
    return None
