"""Building blocks of the policy pack: rule constructors, the stack's environment, small readers.

Every rule is a pulumi-policy ``ResourceValidationPolicy`` or ``StackValidationPolicy`` whose
``validate(args, report_violation)`` the Pulumi engine calls during ``pulumi preview --policy-pack
policy`` and :func:`pgha.ci.policy.evaluate` calls offline with hand-built args. A rule's check
returns the violation messages; an empty result means compliant.

Environment: a rule knows a stack is production from the ``environment`` tag — on the resource
itself or, as pgha sets it, in the AWS provider's ``defaultTags`` (``pgha:tags: {environment:
prod}`` in ``Pulumi.prod.yaml``). ``prod`` and ``production`` count as production.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyComplianceFramework,
    PolicyResource,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

MANDATORY = EnforcementLevel.MANDATORY
ADVISORY = EnforcementLevel.ADVISORY
PRODUCTION = {"prod", "production"}
FSBP = "AWS Foundational Security Best Practices"
FSBP_URL = "https://docs.aws.amazon.com/securityhub/latest/userguide/fsbp-standard.html"
#: A Security Hub control ID list such as ``RDS.3`` or ``EC2.8, EC2.170`` (anything else is a pgha requirement).
_FSBP_CONTROLS = re.compile(r"[A-Za-z0-9]+\.\d+(, [A-Za-z0-9]+\.\d+)*")

Check = Callable[[ResourceValidationArgs], Iterable[str]]
StackCheck = Callable[[Sequence[PolicyResource]], Iterable[tuple[str, str]]]


# The engine hands a rule pulumi-policy's proxies (a Mapping, a Sequence: not dict, list) and every number as a
# float (protobuf's Struct): the readers below take both forms, and offline runs send the engine's
# (pgha.ci.policy.as_the_engine_sends).


def as_dict(value: object) -> Mapping[str, Any]:
    """An object input, also when it arrives JSON-encoded (provider inputs are strings)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, Mapping) else {}


def as_list(value: object) -> list[Any]:
    """A list input; one value (a policy's single Statement, a lone Service) as a list of one; None as []."""
    if value is None:
        return []
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]


def whole_number(value: object) -> int | None:
    """A whole-number input (14 or 14.0, as the engine sends it); None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        return None
    return int(value)


def truthy(value: object) -> bool:
    """A boolean input, also the string forms some inputs take (launch template ``"true"``)."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


def environment(props: Mapping[str, Any], provider_props: Mapping[str, Any] | None) -> str:
    """The ``environment`` tag of a resource, else of its provider's default tags; '' when unset."""
    own = as_dict(props.get("tags")).get("environment")
    if own:
        return str(own)
    default_tags = as_dict(as_dict((provider_props or {}).get("defaultTags")).get("tags"))
    return str(default_tags.get("environment", ""))


def is_production(args: ResourceValidationArgs) -> bool:
    """Whether the resource belongs to a production stack (see the module docstring)."""
    provider = args.provider.props if args.provider is not None else None
    return environment(args.props, provider).lower() in PRODUCTION


def _framework(control: str) -> PolicyComplianceFramework | None:
    """The compliance framework entry of a rule that enforces Security Hub controls (else None)."""
    return PolicyComplianceFramework(name=FSBP, reference=control) if _FSBP_CONTROLS.fullmatch(control) else None


def resource_rule(
    name: str,
    control: str,
    description: str,
    level: EnforcementLevel,
    types: Sequence[str],
    check: Check,
) -> ResourceValidationPolicy:
    """A rule over single resources of ``types``; ``control`` is the Security Hub control ID(s), or
    the pgha requirement a rule without an FSBP control keeps."""
    wanted = frozenset(types)

    def validate(args: ResourceValidationArgs, report_violation: Callable[..., None]) -> None:
        if args.resource_type in wanted:
            for message in check(args):
                report_violation(message)

    return ResourceValidationPolicy(
        name=name,
        description=f"{description} [{control}]",
        validate=validate,
        enforcement_level=level,
        tags=[control],
        url=FSBP_URL,
        framework=_framework(control),
    )


def stack_rule(
    name: str, control: str, description: str, level: EnforcementLevel, check: StackCheck
) -> StackValidationPolicy:
    """A rule that needs several resources at once (an S3 bucket and its configuration resources)."""

    def validate(args: StackValidationArgs, report_violation: Callable[..., None]) -> None:
        for urn, message in check(args.resources):
            report_violation(message, urn)

    return StackValidationPolicy(
        name=name,
        description=f"{description} [{control}]",
        validate=validate,
        enforcement_level=level,
        tags=[control],
        url=FSBP_URL,
        framework=_framework(control),
    )


def per_environment(
    name: str,
    control: str,
    description: str,
    types: Sequence[str],
    check: Check,
) -> list[ResourceValidationPolicy]:
    """The same check, mandatory on production stacks and advisory elsewhere (two policies, since
    pulumi-policy fixes the enforcement level per policy): ``<name>`` and ``<name>-nonprod``."""

    def production_only(args: ResourceValidationArgs) -> Iterable[str]:
        return check(args) if is_production(args) else ()

    def elsewhere(args: ResourceValidationArgs) -> Iterable[str]:
        return () if is_production(args) else check(args)

    return [
        resource_rule(name, control, f"{description} (production)", MANDATORY, types, production_only),
        resource_rule(
            f"{name}-nonprod", control, f"{description} (non-production: advisory)", ADVISORY, types, elsewhere
        ),
    ]


def depends_on(resource: PolicyResource, target: PolicyResource) -> bool:
    """Whether ``resource`` was declared from ``target`` (its dependencies name it)."""
    return any(dep.urn == target.urn for dep in resource.dependencies) or any(
        dep.urn == target.urn for deps in resource.property_dependencies.values() for dep in deps
    )
