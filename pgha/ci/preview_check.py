"""`pgha preview-check`: the diff rule applied to a real `pulumi preview --json`.

The document is the engine's ``PreviewDigest`` (pulumi/pulumi ``sdk/pkg/display/json.go``, written
by ``ShowPreviewDigest`` in ``pkg/backend/display/json.go``): top-level ``config``, ``steps``,
``diagnostics``, ``duration``, ``changeSummary``, ``maybeCorrupt``; each step a ``PreviewStep``
with ``op``, ``urn``, ``provider``, ``oldState``/``newState`` (``apitype.ResourceV3``),
``diffReasons``, ``replaceReasons`` and ``detailedDiff`` (``{path: {kind, inputDiff}}``, kinds
``add``/``delete``/``update`` and their ``-replace`` forms). A replacement shows up as several
steps for one URN (``create-replacement``, ``replace``, ``delete-replaced``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pgha.ci.stateful import STATEFUL_TYPES, is_stateful

PREVIEW_KEYS = {"config", "steps", "diagnostics", "duration", "changeSummary", "maybeCorrupt"}
REPLACE_OPS = {"replace", "create-replacement", "delete-replaced"}
DELETE_OPS = {"delete"}


class PreviewFormatError(ValueError):
    """The document is not the JSON `pulumi preview --json` writes."""


@dataclass
class Finding:
    """One resource a preview would replace or delete."""

    urn: str
    type: str
    action: str
    ops: list[str]
    reasons: list[str]
    protected: bool

    @property
    def dangerous(self) -> bool:
        """Replacing or deleting a stateful resource."""
        return is_stateful(self.type)


@dataclass
class PreviewFindings:
    """What a preview would destroy, and whether the preview itself failed."""

    findings: list[Finding] = field(default_factory=list)
    change_summary: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    steps: int = 0

    @property
    def dangerous(self) -> list[Finding]:
        """Replacements and deletions of stateful resources."""
        return [f for f in self.findings if f.dangerous]

    @property
    def failed(self) -> bool:
        """The engine reported an error: the steps are partial, so what they omit was never checked."""
        return bool(self.errors)


def incomplete_note(result: PreviewFindings) -> str | None:
    """Why a failed preview proves nothing safe (None when the preview succeeded)."""
    if not result.failed:
        return None
    return (
        f"the preview failed ({len(result.errors)} error diagnostic(s)): its steps are partial, so this check "
        "is incomplete and a replacement or deletion may be missing; fix the error and preview again"
    )


def urn_type(urn: str) -> str:
    """The resource type of a URN ``urn:pulumi:<stack>::<project>::<parent$...$type>::<name>``."""
    parts = urn.split("::", 3)
    if len(parts) != 4 or not parts[0].startswith("urn:pulumi:"):
        raise PreviewFormatError(f"{urn!r} is not a Pulumi URN")
    return parts[2].rsplit("$", 1)[-1]


def _parse(text: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise PreviewFormatError(f"not JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(document, dict):
        raise PreviewFormatError("not a `pulumi preview --json` document (expected an object)")
    # newer engines may add top-level keys; what makes a preview is its steps or change summary
    if not ({"steps", "changeSummary"} & set(document)):
        raise PreviewFormatError(
            "not a `pulumi preview --json` document "
            f"(expected steps or changeSummary among {sorted(PREVIEW_KEYS)}; got {sorted(document)})"
        )
    steps = document.get("steps", [])
    if not isinstance(steps, list) or not all(
        isinstance(s, dict) and isinstance(s.get("op"), str) and isinstance(s.get("urn"), str) for s in steps
    ):
        raise PreviewFormatError("not a `pulumi preview --json` document (every step needs an op and a urn)")
    for step in steps:
        _check_shape(step, "replaceReasons", list, str)
        _check_shape(step, "detailedDiff", dict, dict)
        _check_shape(step, "oldState", dict)
    _check_shape(document, "diagnostics", list, dict)
    _check_shape(document, "changeSummary", dict, int)
    return document


def _check_shape(container: dict[str, Any], key: str, kind: type, item: type | None = None) -> None:
    """``container[key]``, when present and not null, is a ``kind`` whose values are ``item``s."""
    value = container.get(key)
    if value is None:
        return
    items = value.values() if isinstance(value, dict) else value
    if not isinstance(value, kind) or (item is not None and not all(isinstance(v, item) for v in items)):
        where = f"step {container['urn']}" if "urn" in container else "the document"
        shape = f"a {_SHAPES[kind]}" + (f" of {_SHAPES[item]}s" if item else "")
        raise PreviewFormatError(f"not a `pulumi preview --json` document ({key} of {where} is not {shape})")


_SHAPES = {list: "list", dict: "map", str: "string", int: "number"}


def check_preview(text: str) -> PreviewFindings:
    """Every replacement and deletion in a preview, with the URN, the ops and the inputs that cause it."""
    document = _parse(text)
    result = PreviewFindings(
        change_summary=dict(document.get("changeSummary") or {}), steps=len(document.get("steps", []))
    )
    result.errors = [
        d.get("message", "").strip()
        for d in document.get("diagnostics") or []
        if isinstance(d, dict) and d.get("severity") == "error"
    ]
    by_urn: dict[str, list[dict[str, Any]]] = {}
    for step in document.get("steps", []):
        if step["op"] in REPLACE_OPS | DELETE_OPS:
            by_urn.setdefault(step["urn"], []).append(step)
    for urn, steps in by_urn.items():
        ops = [s["op"] for s in steps]
        reasons: list[str] = []
        for step in steps:
            reasons += [r for r in step.get("replaceReasons") or [] if r not in reasons]
            for path, diff in (step.get("detailedDiff") or {}).items():
                if str(diff.get("kind", "")).endswith("-replace") and path not in reasons:
                    reasons.append(path)
        protected = any((s.get("oldState") or {}).get("protect") for s in steps)
        action = "replace" if REPLACE_OPS & set(ops) else "delete"
        result.findings.append(Finding(urn, urn_type(urn), action, ops, reasons, protected))
    return result


def render_findings(result: PreviewFindings) -> str:
    """One line per dangerous change (URN, op, reasons), then the other replacements and a summary."""
    lines = [f"preview failed: {e}" for e in result.errors]
    for f in result.dangerous:
        label = STATEFUL_TYPES[f.type].label
        why = ", ".join(f.reasons) if f.reasons else ("removed from the program" if f.action == "delete" else "?")
        lines.append(
            f"DANGEROUS {f.action} of {label}: {f.urn} (ops: {', '.join(f.ops)}; because: {why})"
            + (" [protected: the engine refuses until unprotected]" if f.protected else "")
        )
    for f in result.findings:
        if not f.dangerous:
            why = ", ".join(f.reasons) or ("removed from the program" if f.action == "delete" else "no reasons given")
            lines.append(f"  {f.action} {f.urn} ({why})")
    summary = ", ".join(f"{op} {n}" for op, n in sorted(result.change_summary.items()))
    incomplete = " (incomplete: the preview failed)" if result.failed else ""
    lines.append(f"{result.steps} steps ({summary or 'no summary'}); {len(result.dangerous)} dangerous{incomplete}")
    return "\n".join(lines)
