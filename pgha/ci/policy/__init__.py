"""pgha's policy pack: AWS Security Hub FSBP controls for what pgha builds, as pulumi-policy rules.

The rules live in one module per service, each exposing ``POLICIES`` (resource and stack rules
alike; a module may keep its stack rules in ``STACK_POLICIES``); ``POLICY_MODULES`` lists them
(adding a module is one line). ``policy/__main__.py`` hands :data:`ALL_POLICIES` to a
``PolicyPack`` for ``pulumi preview --policy-pack policy``; :func:`evaluate` runs the very same
rules offline over what the mock harness registers (``pgha policy`` and the tests), calling each
rule's ``validate(args, report_violation)`` with ``ResourceValidationArgs`` /
``StackValidationArgs`` built from the registrations, as the engine's analyzer would.

This package imports only pulumi-policy (not the harness), so the policy pack's own virtualenv
needs nothing else.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format, struct_pb2
from pulumi_policy import (
    Policy,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import unknown_checking_proxy

if TYPE_CHECKING:
    from pgha.ci.harness import Plan, RegisteredResource

#: The rule modules, one per service; each exposes ``POLICIES`` (and may add ``STACK_POLICIES``).
POLICY_MODULES = (
    "pgha.ci.policy.rds",
    "pgha.ci.policy.ec2",
    "pgha.ci.policy.s3",
    "pgha.ci.policy.network",
    "pgha.ci.policy.kms",
    "pgha.ci.policy.hardening",
)

ALL_POLICIES: list[Policy] = [
    policy
    for module in map(import_module, POLICY_MODULES)
    for policy in [*module.POLICIES, *getattr(module, "STACK_POLICIES", [])]
]
_names = [p.name for p in ALL_POLICIES]
if len(set(_names)) != len(_names):  # the engine keys results by name: two rules may not share one
    raise ValueError(f"duplicate policy names: {sorted({n for n in _names if _names.count(n) > 1})}")


@dataclass(frozen=True)
class Violation:
    """One rule broken by one resource (or, for stack rules, the resource it names)."""

    policy: str
    level: str
    resource: str
    urn: str
    message: str

    @property
    def mandatory(self) -> bool:
        """Whether this violation blocks (`pgha policy` exits 1; `pulumi preview` fails)."""
        return self.level == "mandatory"

    def to_json(self) -> dict[str, Any]:
        """The violation for machines."""
        return {
            "policy": self.policy,
            "level": self.level,
            "resource": self.resource,
            "urn": self.urn,
            "message": self.message,
        }


def plain_inputs(value: Any) -> Any:
    """Inputs as JSON values: secrets unwrapped (rules never print values), anything else (an asset) as text."""
    if type(value).__name__ == "Secret" and hasattr(value, "value"):
        return plain_inputs(value.value)
    if isinstance(value, dict):
        return {k: plain_inputs(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_inputs(v) for v in value]
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def as_the_engine_sends(inputs: Mapping[str, Any]) -> Mapping[str, Any]:
    """Inputs the way the engine's analyzer hands them to a rule, so that offline runs judge what a preview
    judges: through a protobuf Struct (every number becomes a float), then pulumi-policy's own
    deserialization and its unknown-checking proxies (a ``Mapping`` and ``Sequence``, not ``dict``/``list``)."""
    struct = struct_pb2.Struct()
    struct.update(plain_inputs(inputs))
    return unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(struct)))


def _options(resource: RegisteredResource) -> PolicyResourceOptions:
    options = getattr(resource, "options", {}) or {}
    return PolicyResourceOptions(
        protect=bool(getattr(resource, "protect", options.get("protect"))),
        ignore_changes=list(options.get("ignoreChanges", [])),
        delete_before_replace=bool(options.get("deleteBeforeReplace")),
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
        parent=resource.parent or None,
    )


def _run(policy: Policy, args: Any, report: Any) -> None:
    result = policy.validate(args, report)  # type: ignore[attr-defined]
    if inspect.isawaitable(result):
        asyncio.run(result)  # type: ignore[arg-type]


def evaluate(
    resources: Sequence[RegisteredResource],
    policies: Sequence[Policy] | None = None,
    config: Mapping[str, Any] | None = None,
) -> list[Violation]:
    """Run every rule over the registered resources, as the engine would during a preview."""
    policies = ALL_POLICIES if policies is None else policies
    by_urn = {r.urn: r for r in resources}
    providers = {
        r.urn: PolicyProviderResource(r.type, as_the_engine_sends(r.inputs), r.urn, r.name)
        for r in resources
        if r.type.startswith("pulumi:providers:")
    }

    def provider_of(resource: RegisteredResource) -> PolicyProviderResource | None:
        return providers.get(resource.provider.rsplit("::", 1)[0]) if resource.provider else None

    stack: dict[str, PolicyResource] = {
        r.urn: PolicyResource(
            r.type, as_the_engine_sends(r.inputs), r.urn, r.name, _options(r), provider_of(r), None, [], {}
        )
        for r in resources
    }
    for r in resources:
        node = stack[r.urn]
        node.parent = stack.get(r.parent)
        node.dependencies = [stack[d] for d in r.dependencies if d in stack]
        node.property_dependencies = {
            key: [stack[d] for d in deps if d in stack]
            for key, deps in (getattr(r, "property_dependencies", {}) or {}).items()
        }

    violations: list[Violation] = []
    for policy in policies:
        level = policy.enforcement_level.value if policy.enforcement_level else "advisory"

        def report(
            message: str, urn: str | None = None, *, _policy: Policy = policy, _level: str = level, _default: str = ""
        ) -> None:
            target = urn or _default
            name = by_urn[target].name if target in by_urn else target
            violations.append(Violation(_policy.name, _level, name, target, message))

        if isinstance(policy, ResourceValidationPolicy):
            for r in resources:
                args = ResourceValidationArgs(
                    r.type, stack[r.urn].props, r.urn, r.name, stack[r.urn].opts, provider_of(r), config
                )
                _run(policy, args, lambda message, urn=None, _urn=r.urn: report(message, urn or _urn))
        elif isinstance(policy, StackValidationPolicy):
            _run(policy, StackValidationArgs(list(stack.values()), config), report)
    return violations


def evaluate_plan(plan: Plan) -> list[Violation]:
    """Every violation in what one run of the program registered, mandatory ones first."""
    return sorted(evaluate(plan.resources), key=lambda v: (not v.mandatory, v.policy, v.resource))
