"""`pgha diff`: what a change to the program does to a stack, offline, and whether it destroys data.

The program runs under the harness's mocks twice: at a base git ref (checked out into a temporary
``git worktree``, run in a subprocess with that tree first on ``sys.path``) and at the working
tree. Resources are matched by URN (or, when renamed, by an alias, as the engine does) and each
difference is classed ``create``, ``update``, ``replace`` or ``delete``. ``replace`` comes from the
provider's force-new inputs (:mod:`pgha.ci.stateful`), the ``replaceOnChanges`` option, a replaced
provider, or a replaced resource whose new identity feeds a force-new input. A ``replace`` or
``delete`` of a stateful resource is *dangerous*.

Limits (the mocks are not AWS): the provider's own diff is approximated by comparing inputs;
for non-stateful types every input change is shown as ``update``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgha.ci import snapshot as snapshot_module
from pgha.ci.harness import PROJECT_DIR
from pgha.ci.stateful import STATEFUL_TYPES, force_new_inputs, is_stateful

ACTIONS = ("create", "update", "replace", "delete")
SYMBOLS = {"create": "+", "update": "~", "replace": "+-", "delete": "-"}


class DiffInputError(Exception):
    """Bad input to `pgha diff` (unknown ref or stack): exit 2, nothing changed."""


class DiffProgramError(Exception):
    """The program failed at one of the two versions, so there is nothing to compare."""


@dataclass
class Change:
    """One resource that differs between the two versions."""

    urn: str
    type: str
    name: str
    action: str
    #: Input path -> (old, new); missing side is ``None``. Secrets are digests, shown as ``[secret]``.
    inputs: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    #: Why a replacement happens: the force-new inputs (or option, provider, cascade) that cause it.
    reasons: list[str] = field(default_factory=list)
    protected: bool = False

    @property
    def stateful(self) -> bool:
        """Whether the resource holds data or identity (see :mod:`pgha.ci.stateful`)."""
        return is_stateful(self.type)

    @property
    def dangerous(self) -> bool:
        """A replace or delete of a stateful resource."""
        return self.stateful and self.action in ("replace", "delete")

    @property
    def label(self) -> str:
        """A readable name for the type."""
        stateful = STATEFUL_TYPES.get(self.type)
        return stateful.label if stateful else self.type

    def to_json(self) -> dict[str, Any]:
        """The change for machines; values as shown to people (secrets as ``[secret]``)."""
        return {
            "urn": self.urn,
            "name": self.name,
            "type": self.type,
            "action": self.action,
            "stateful": self.stateful,
            "dangerous": self.dangerous,
            "protected": self.protected,
            "reasons": self.reasons,
            "inputs": {path: {"old": show(old), "new": show(new)} for path, (old, new) in self.inputs.items()},
        }


@dataclass
class DiffResult:
    """Every change of one stack between a base ref and the working tree."""

    stack: str
    base_ref: str
    base_commit: str
    changes: list[Change]
    notes: list[str] = field(default_factory=list)
    #: Config overrides (``--set``) both versions ran with: key -> value, None for a removed key.
    overrides: dict[str, str | None] = field(default_factory=dict)

    @property
    def settings(self) -> str:
        """The overrides as ``--set`` takes them (``engine=patroni``; ``key=`` removes), or "" without any."""
        return " ".join(f"{key}={value or ''}" for key, value in self.overrides.items())

    @property
    def dangerous(self) -> list[Change]:
        """The dangerous changes, deletes first."""
        return sorted((c for c in self.changes if c.dangerous), key=lambda c: (c.action != "delete", c.urn))

    def counts(self) -> dict[str, int]:
        """How many resources each action touches."""
        return {action: sum(c.action == action for c in self.changes) for action in ACTIONS}

    def to_json(self) -> dict[str, Any]:
        """The whole diff for machines."""
        return {
            "stack": self.stack,
            "overrides": self.overrides,
            "base": {"ref": self.base_ref, "commit": self.base_commit},
            "head": "working tree",
            "summary": {**self.counts(), "dangerous": len(self.dangerous)},
            "notes": self.notes,
            "dangerous": [c.to_json() for c in self.dangerous],
            "changes": [c.to_json() for c in self.changes],
        }


# --- comparing two snapshots ---------------------------------------------------------------


def _is_secret(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {snapshot_module.SECRET_KEY}


def show(value: object, width: int = 60) -> str:
    """A value as a reviewer sees it: JSON, secrets as ``[secret]``, long values cut."""
    if value is None:
        return "(none)"
    if _is_secret(value):
        return "[secret]"

    def unsecret(item: Any) -> Any:
        if _is_secret(item):
            return "[secret]"
        if isinstance(item, dict):
            return {k: unsecret(v) for k, v in item.items()}
        if isinstance(item, list):
            return [unsecret(v) for v in item]
        return item

    text = json.dumps(unsecret(value), sort_keys=True, separators=(",", ":"))
    return text if len(text) <= width else text[: width - 1] + "…"


def _keyed(items: Any) -> dict[str, Any] | None:
    """A list of objects that each carry a unique ``name`` (RDS parameters), keyed by it; else None."""
    if not isinstance(items, list) or not items:
        return None
    if not all(isinstance(i, dict) and isinstance(i.get("name"), str) and not _is_secret(i) for i in items):
        return None
    keyed = {i["name"]: i for i in items}
    return keyed if len(keyed) == len(items) else None


def _changes(old: Any, new: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """``(path, old, new)`` where two input trees differ: objects are walked, named lists (RDS
    parameters) are matched by name as ``parameters[max_connections]``, other lists compared whole."""
    if isinstance(old, dict) and isinstance(new, dict) and not _is_secret(old) and not _is_secret(new):
        for key in sorted(set(old) | set(new)):
            yield from _changes(old.get(key), new.get(key), f"{path}.{key}" if path else key)
        return
    old_keyed, new_keyed = _keyed(old), _keyed(new)
    if old_keyed is not None and new_keyed is not None:
        for name in sorted(set(old_keyed) | set(new_keyed)):
            yield from _changes(old_keyed.get(name), new_keyed.get(name), f"{path}[{name}]")
    elif old != new:
        yield path, old, new


def _get(inputs: Mapping[str, Any], path: str) -> Any:
    value: Any = inputs
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _under(path: str, prefixes: list[str]) -> bool:
    return any(p == "*" or path == p or path.startswith((f"{p}.", f"{p}[")) for p in prefixes)


def _replace_reasons(type_: str, old: Mapping[str, Any], new: Mapping[str, Any], ignored: list[str]) -> list[str]:
    """The force-new inputs (from the table) that differ, each with its old and new value."""
    reasons = []
    for force_new in force_new_inputs(type_):
        if _under(force_new.path, ignored):
            continue
        if force_new.when and not new.get(force_new.when):
            continue
        before, after = _get(old, force_new.path), _get(new, force_new.path)
        if force_new.default is not None:
            before = force_new.default if before is None else before
            after = force_new.default if after is None else after
        if before == after or (force_new.computed and after is None):
            continue
        why = f"{force_new.path}: {show(before)} → {show(after)}"
        reasons.append(f"{why} ({force_new.condition})" if force_new.condition else why)
    return reasons


def _provider_urn(reference: str) -> str:
    """The URN part of a provider reference ``urn::id``."""
    return reference.rsplit("::", 1)[0] if reference else ""


def compare(base: list[dict[str, Any]], head: list[dict[str, Any]]) -> list[Change]:
    """Class every resource that differs between two snapshots' resource lists (matched by URN)."""
    new_by_urn = {r["urn"]: r for r in head}
    old_by_urn = _follow_aliases({r["urn"]: r for r in base}, new_by_urn)
    changes: dict[str, Change] = {}

    for urn, res in new_by_urn.items():
        if urn not in old_by_urn:
            changes[urn] = Change(
                urn, res["type"], res["name"], "create", inputs={k: (None, v) for k, v in sorted(res["inputs"].items())}
            )
    for urn, res in old_by_urn.items():
        if urn not in new_by_urn:
            changes[urn] = Change(
                urn, res["type"], res["name"], "delete", protected=bool(res.get("options", {}).get("protect"))
            )

    for urn, new in new_by_urn.items():
        old = old_by_urn.get(urn)
        if old is None:
            continue
        options = new.get("options", {})
        ignored = list(options.get("ignoreChanges", []))
        diffs = [d for d in _changes(old["inputs"], new["inputs"]) if not _under(d[0], ignored)]
        paths = [d[0] for d in diffs]
        reasons = _replace_reasons(new["type"], old["inputs"], new["inputs"], ignored)
        reasons += [f"{p} (replaceOnChanges)" for p in paths if _under(p, options.get("replaceOnChanges", []))]
        if new["type"].startswith("pulumi:providers:") and "region" in paths:
            reasons.append(f"region: {show(_get(old['inputs'], 'region'))} → {show(_get(new['inputs'], 'region'))}")
        if paths or reasons:
            changes[urn] = Change(
                urn,
                new["type"],
                new["name"],
                "replace" if reasons else "update",
                inputs={path: (before, after) for path, before, after in diffs},
                reasons=reasons,
                protected=bool(options.get("protect") or old.get("options", {}).get("protect")),
            )

    _cascade(changes, old_by_urn, new_by_urn)
    order = {urn: i for i, urn in enumerate([*new_by_urn, *old_by_urn])}
    return sorted(changes.values(), key=lambda c: order[c.urn])


def _follow_aliases(old_by_urn: Mapping[str, dict], new_by_urn: Mapping[str, dict]) -> dict[str, dict]:
    """The base's resources keyed by the URN they have in the head: a head resource whose URN is new
    takes the base resource one of its ``aliases`` names (as the engine does), unless that URN is still
    in the head or another resource took it first. A renamed resource is then compared, not deleted and
    created."""
    renamed: dict[str, str] = {}
    for urn, res in new_by_urn.items():
        if urn in old_by_urn:
            continue
        for alias in res.get("options", {}).get("aliases", []):
            if alias in old_by_urn and alias not in new_by_urn and alias not in renamed:
                renamed[alias] = urn
                break
    return {renamed.get(urn, urn): res for urn, res in old_by_urn.items()}


def _cascade(changes: dict[str, Change], old_by_urn: Mapping[str, dict], new_by_urn: Mapping[str, dict]) -> None:
    """Propagate replacements: a new provider or a new identity replaces what depends on it.

    A replaced resource gets a new ID/ARN (unknown until it exists), so every input computed from
    it changes; where that input is force-new, the dependent is replaced too (a new KMS key
    replaces the database encrypted with it). A replaced provider replaces its resources.
    """
    while True:
        replaced = {urn: c for urn, c in changes.items() if c.action == "replace"}
        grew = False
        for urn, new in new_by_urn.items():
            if urn not in old_by_urn or (urn in changes and changes[urn].action == "replace"):
                continue
            reasons = []
            provider = replaced.get(_provider_urn(new.get("provider", "")))
            if provider is not None:
                reasons.append(f"its provider {provider.name} is replaced")
            force_new = {f.path.split(".")[0] for f in force_new_inputs(new["type"])}
            ignored = list(new.get("options", {}).get("ignoreChanges", []))
            fed = []
            for key, deps in new.get("property_dependencies", {}).items():
                sources = [replaced[d].name for d in deps if d in replaced]
                if not sources or _under(key, ignored):
                    continue
                fed.append(key)
                if key in force_new:
                    reasons.append(f"{key}: new value from the replacement of {', '.join(sources)}")
            if not reasons and not fed:
                continue
            change = changes.get(urn) or Change(
                urn, new["type"], new["name"], "update", protected=bool(new.get("options", {}).get("protect"))
            )
            for key in fed:
                change.inputs.setdefault(key, (_get(old_by_urn[urn]["inputs"], key), "(known after replacement)"))
            if reasons:
                change.action = "replace"
                change.reasons += reasons
            if urn not in changes or reasons:
                grew = True
            changes[urn] = change
        if not grew:
            return


# --- running the two versions --------------------------------------------------------------


def _git(*args: str, cwd: Path = PROJECT_DIR) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def resolve_ref(ref: str, project_dir: Path = PROJECT_DIR) -> str:
    """The commit a git ref names, or :class:`DiffInputError`."""
    result = _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=project_dir)
    if result.returncode != 0 or not result.stdout.strip():
        raise DiffInputError(f"unknown git ref {ref!r}: not a commit in {project_dir}")
    return result.stdout.strip()


def snapshot_at(
    commit: str,
    stack: str,
    salt: str,
    project_dir: Path = PROJECT_DIR,
    overrides: Mapping[str, str | None] | None = None,
) -> dict[str, Any]:
    """The program at ``commit``: a temporary worktree, its own harness in a subprocess, then cleanup.

    ``overrides`` (config keys, as ``--set`` gives them) reach that harness as the script's JSON argument.
    """
    workdir = Path(tempfile.mkdtemp(prefix="pgha-diff-"))
    tree = workdir / "base"
    try:
        added = _git("worktree", "add", "--detach", "--quiet", str(tree), commit, cwd=project_dir)
        if added.returncode != 0:
            raise DiffProgramError(f"git worktree add {commit[:12]} failed: {added.stderr.strip()}")
        out = workdir / "snapshot.json"
        code = f"import runpy; runpy.run_path({str(Path(snapshot_module.__file__))!r}, run_name='__main__')"
        env = {**_environ(), snapshot_module.SALT_ENV: salt}
        run = subprocess.run(
            [sys.executable, "-c", code, stack, str(out), json.dumps(dict(overrides or {}))],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if run.returncode != 0 or not out.exists():
            last = (run.stderr.strip().splitlines() or ["no output"])[-1]
            raise DiffProgramError(f"running the program at {commit[:12]} failed: {last}")
        return json.loads(out.read_text())
    finally:
        _git("worktree", "remove", "--force", str(tree), cwd=project_dir)
        shutil.rmtree(workdir, ignore_errors=True)
        _git("worktree", "prune", cwd=project_dir)


def _environ() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the base tree, and only it, provides pgha and components
    return env


def diff_stack(
    stack: str, base_ref: str, project_dir: Path = PROJECT_DIR, overrides: Mapping[str, str | None] | None = None
) -> DiffResult:
    """Compare ``stack`` at ``base_ref`` with the working tree, both run with the same config ``overrides``.

    The overrides (``pgha diff --set``, as ``pgha plan`` and ``pgha policy`` take them) let CI diff a
    variant no committed stack file selects, e.g. prod with ``engine=patroni``.

    Raises :class:`DiffInputError` for an unknown ref or a stack the working tree does not have,
    :class:`DiffProgramError` when either version of the program fails.
    """
    commit = resolve_ref(base_ref, project_dir)
    salt = secrets.token_hex(16)
    overrides = dict(overrides or {})
    head = snapshot_module.take(stack, overrides, salt)
    if head["missing_stack"]:
        raise DiffInputError(head["error"])
    if head["error"]:
        raise DiffProgramError(f"the program in the working tree failed: {head['error']}")
    base = snapshot_at(commit, stack, salt, project_dir, overrides)
    notes = []
    if base["missing_stack"]:
        notes.append(f"stack {stack} does not exist at {base_ref}: every resource is new")
    elif base["error"]:
        raise DiffProgramError(f"the program at {base_ref} failed: {base['error']}")
    return DiffResult(stack, base_ref, commit, compare(base["resources"], head["resources"]), notes, overrides)


# --- rendering -----------------------------------------------------------------------------


def _because(change: Change) -> str:
    if change.action == "delete":
        return "removed from the program (or renamed: a new logical name is a new resource)"
    return "; ".join(change.reasons)


def render_text(result: DiffResult) -> str:
    """The diff for a terminal: dangerous changes first, then every change."""
    counts = result.counts()
    stack = f"{result.stack} (--set {result.settings})" if result.overrides else result.stack
    lines = [f"stack {stack}: {result.base_ref} ({result.base_commit[:7]}) -> working tree", *result.notes]
    for change in result.dangerous:
        protected = " [protected]" if change.protected else ""
        lines.append(f"DANGEROUS {change.action} {change.name} ({change.label}){protected}: {_because(change)}")
    lines.append(", ".join(f"{n} to {a}" for a, n in counts.items()) + f"; {len(result.dangerous)} dangerous")
    for change in result.changes:
        what = ", ".join(change.reasons) if change.action == "replace" else ", ".join(change.inputs)
        if change.action in ("create", "delete"):
            what = ""
        lines.append(f"  {SYMBOLS[change.action]:>2} {change.action:<7} {change.name}  {change.type}  {what}".rstrip())
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(result: DiffResult) -> str:
    """The diff as a PR comment: a summary line, the dangerous changes, then the full list collapsed."""
    counts = result.counts()
    dangerous = result.dangerous
    verdict = (
        f"**⛔ {len(dangerous)} dangerous change{'s' if len(dangerous) != 1 else ''}**"
        if dangerous
        else "**✅ no dangerous change**"
    )
    summary = " · ".join(f"{n} to {a}" for a, n in counts.items())
    stack = f"`{result.stack}` with `--set {result.settings}`" if result.overrides else f"`{result.stack}`"
    lines = [
        f"### `pgha diff` — stack {stack} vs `{result.base_ref}` ({result.base_commit[:7]})",
        "",
        f"{verdict} · {summary}",
        "",
    ]
    lines += [f"> {note}" for note in result.notes]
    if dangerous:
        lines += [
            "#### Dangerous: data or identity would be destroyed",
            "",
            "| change | resource | type | because |",
            "|---|---|---|---|",
        ]
        for change in dangerous:
            name = f"`{change.name}`" + (" (protected)" if change.protected else "")
            lines.append(f"| **{change.action}** | {_cell(name)} | {change.label} | {_cell(_because(change))} |")
        lines.append("")
    lines += [f"<details><summary>All {len(result.changes)} changes</summary>", ""]
    if result.changes:
        lines += ["| change | resource | type | inputs |", "|---|---|---|---|"]
        for change in result.changes:
            if change.action in ("create", "delete"):
                detail = ""
            else:
                detail = "<br>".join(
                    f"`{p}`: {_cell(show(o))} → {_cell(show(n))}" for p, (o, n) in change.inputs.items()
                )
                if change.reasons:
                    detail += ("<br>" if detail else "") + "replaced because " + _cell("; ".join(change.reasons))
            lines.append(f"| {change.action} | `{_cell(change.name)}` | `{change.type}` | {detail} |")
    else:
        lines.append("No resource changes.")
    lines += ["", "</details>", ""]
    return "\n".join(lines)
