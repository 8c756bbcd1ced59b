"""What the program registers for one stack, as JSON that can cross a process boundary.

`pgha diff` compares two versions of the program. The working tree's version runs in-process;
the base version runs in a subprocess inside a temporary git worktree, with that tree first on
``sys.path``, so this file is also run as a script there (``python -c 'runpy.run_path(...)'``)
against the *base tree's* harness. It therefore imports nothing from pgha at module level and
reads newer harness fields with ``getattr`` defaults.

Secret values never leave the process: each is replaced by a salted digest (the salt is random
per `pgha diff` run and shared only with its own subprocess), so a changed secret is seen as
changed and is still printed only as ``[secret]``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping
from typing import Any

SECRET_KEY = "__pgha_secret__"
SALT_ENV = "PGHA_DIFF_SALT"


def _encode(value: Any, salt: str, redact: Any) -> Any:
    """Inputs as JSON: secrets as salted digests, assets as the harness describes them."""
    if type(value).__name__ == "Secret" and hasattr(value, "value"):
        plain = json.dumps(_encode(value.value, salt, redact), sort_keys=True, default=str)
        return {SECRET_KEY: hashlib.sha256(f"{salt}\0{plain}".encode()).hexdigest()[:16]}
    if isinstance(value, dict):
        return {str(k): _encode(v, salt, redact) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v, salt, redact) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if hasattr(value, "assets"):  # AssetArchive
        return {"archive": {name: _encode(asset, salt, redact) for name, asset in sorted(value.assets.items())}}
    if isinstance(getattr(value, "path", None), str):  # FileAsset / FileArchive: the engine compares content
        return {"file-sha256": _content_digest(value.path)}
    if isinstance(getattr(value, "text", None), str):
        return {"text-sha256": hashlib.sha256(value.text.encode()).hexdigest()[:16]}
    return redact(value)


def _content_digest(path: str) -> str:
    """The digest of a file's content, or of every file under a directory (paths relative to it)."""
    digest = hashlib.sha256()
    root = os.path.abspath(path)
    if os.path.isdir(root):
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(folder, name)
                digest.update(os.path.relpath(full, root).encode() + b"\0")
                with open(full, "rb") as handle:
                    digest.update(handle.read())
    elif os.path.exists(root):
        with open(root, "rb") as handle:
            digest.update(handle.read())
    return digest.hexdigest()[:16]


def take(stack: str, overrides: Mapping[str, Any] | None = None, salt: str = "") -> dict[str, Any]:
    """Run the program of the tree this process imports pgha from and describe what it registers.

    ``missing_stack`` is true when that tree has no ``Pulumi.<stack>.yaml`` (a stack the change adds);
    ``error`` holds the program's failure, if any, as one line.
    """
    from pgha.ci import harness

    try:
        with harness.carrying_aliased_state():  # a diff is an update of the stack the base deployed
            plan = harness.run_program(stack, overrides, check=False)
    except FileNotFoundError as err:
        return {"stack": stack, "missing_stack": True, "error": str(err), "resources": []}
    error = None if plan.error is None else f"{type(plan.error).__name__}: {plan.error}"
    resources = [
        {
            "type": r.type,
            "name": r.name,
            "urn": r.urn,
            "parent": r.parent,
            "provider": r.provider,
            "custom": r.custom,
            "inputs": _encode(r.inputs, salt, harness.redact),
            "dependencies": list(r.dependencies),
            "property_dependencies": dict(getattr(r, "property_dependencies", {}) or {}),
            "options": {
                **(getattr(r, "options", {}) or {}),
                **({"protect": bool(r.protect)} if hasattr(r, "protect") else {}),
            },
        }
        for r in plan.resources
    ]
    return {"stack": stack, "missing_stack": False, "error": error, "resources": resources}


def main(argv: list[str]) -> int:
    """Script entry: ``snapshot.py STACK OUT_FILE [OVERRIDES_JSON]``; writes the snapshot as JSON to OUT_FILE
    (a file, not stdout, which the program may print to)."""
    stack, out = argv[0], argv[1]
    overrides = json.loads(argv[2]) if len(argv) > 2 else None
    snapshot = take(stack, overrides, os.environ.get(SALT_ENV, ""))
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(snapshot, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
