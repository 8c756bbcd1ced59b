"""KMS rule (FSBP KMS.4), mandatory: symmetric customer-managed keys rotate automatically."""

from __future__ import annotations

from collections.abc import Iterable

from pulumi_policy import ResourceValidationArgs

from pgha.ci.policy.common import MANDATORY, resource_rule, truthy

KEY = "aws:kms/key:Key"


def rotation(args: ResourceValidationArgs) -> Iterable[str]:
    """Automatic rotation on (asymmetric and HMAC keys cannot rotate and are skipped)."""
    spec = args.props.get("customerMasterKeySpec") or "SYMMETRIC_DEFAULT"
    if spec == "SYMMETRIC_DEFAULT" and not truthy(args.props.get("enableKeyRotation")):
        yield "enableKeyRotation is not true"


POLICIES = [
    resource_rule(
        "kms-rotation", "KMS.4", "Customer-managed KMS keys rotate automatically", MANDATORY, [KEY], rotation
    ),
]
