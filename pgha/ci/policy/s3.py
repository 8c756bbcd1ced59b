"""S3 rules, mandatory but for cross-region replication (the bucket holds pgBackRest's WAL archive
and base backups; a DR region is a stack's choice, ``pgha:drRegion``).

With pulumi-aws 7 a bucket's settings are separate resources (``BucketPolicy``,
``BucketPublicAccessBlock``, ``BucketVersioning``, ``BucketServerSideEncryptionConfiguration``),
so these are stack rules: each bucket needs a configuration resource declared for it (its
``bucket`` input comes from the bucket) that satisfies the control.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from pulumi_policy import PolicyResource

from pgha.ci.policy.common import ADVISORY, MANDATORY, as_dict, as_list, stack_rule, truthy

BUCKET = "aws:s3/bucket:Bucket"
POLICY = "aws:s3/bucketPolicy:BucketPolicy"
ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
ENCRYPTION = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
LOGGING = "aws:s3/bucketLogging:BucketLogging"
REPLICATION = "aws:s3/bucketReplicationConfig:BucketReplicationConfig"
BLOCK_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")


def _configures(config: PolicyResource, bucket: PolicyResource) -> bool:
    """Whether ``config`` is declared for ``bucket``: its ``bucket`` input comes from it.

    Other inputs may name another bucket too (a log bucket's policy names the bucket it logs).
    """
    return any(d.urn == bucket.urn for d in config.property_dependencies.get("bucket", []))


def _per_bucket(
    resources: Sequence[PolicyResource], config_type: str, complaint: str, ok: Any
) -> Iterable[tuple[str, str]]:
    buckets = [r for r in resources if r.resource_type == BUCKET]
    configs = [r for r in resources if r.resource_type == config_type]
    for bucket in buckets:
        mine = [c for c in configs if _configures(c, bucket)]
        if not any(ok(c.props) for c in mine):
            yield bucket.urn, f"bucket {bucket.name}: {complaint}"


def _denies_plain_http(props: Any) -> bool:
    try:
        document = json.loads(props.get("policy")) if isinstance(props.get("policy"), str) else props.get("policy")
    except ValueError:
        return False
    statements = as_dict(document).get("Statement") or []
    for statement in as_list(statements):
        condition = as_dict(as_dict(statement).get("Condition")).get("Bool") or {}
        if statement.get("Effect") == "Deny" and str(as_dict(condition).get("aws:SecureTransport")).lower() == "false":
            return True
    return False


def tls_only(resources: Sequence[PolicyResource]) -> Iterable[tuple[str, str]]:
    """S3.5: a bucket policy denies requests without TLS (aws:SecureTransport false)."""
    return _per_bucket(resources, POLICY, "no bucket policy denies aws:SecureTransport=false", _denies_plain_http)


def public_access_block(resources: Sequence[PolicyResource]) -> Iterable[tuple[str, str]]:
    """S3.8: all four public access block settings on."""
    return _per_bucket(
        resources,
        ACCESS_BLOCK,
        f"no public access block with {', '.join(BLOCK_FLAGS)} all true",
        lambda props: all(truthy(props.get(flag)) for flag in BLOCK_FLAGS),
    )


def versioning(resources: Sequence[PolicyResource]) -> Iterable[tuple[str, str]]:
    """S3.14: versioning enabled (a deleted or overwritten backup file can be recovered)."""
    return _per_bucket(
        resources,
        VERSIONING,
        "versioning is not Enabled",
        lambda props: as_dict(props.get("versioningConfiguration")).get("status") == "Enabled",
    )


def _kms_default(props: Any) -> bool:
    for rule in props.get("rules") or []:
        default = as_dict(as_dict(rule).get("applyServerSideEncryptionByDefault"))
        if default.get("sseAlgorithm") in ("aws:kms", "aws:kms:dsse"):
            return True
    return False


def _sse_s3_default(props: Any) -> bool:
    return any(
        as_dict(as_dict(rule).get("applyServerSideEncryptionByDefault")).get("sseAlgorithm") == "AES256"
        for rule in props.get("rules") or []
    )


def _receives_access_logs(bucket: PolicyResource, resources: Sequence[PolicyResource]) -> bool:
    """Whether a ``BucketLogging`` names ``bucket`` as its target (from its ``targetBucket`` dependencies)."""
    return any(
        r.resource_type == LOGGING and any(d.urn == bucket.urn for d in r.property_dependencies.get("targetBucket", []))
        for r in resources
    )


def kms_encryption(resources: Sequence[PolicyResource]) -> Iterable[tuple[str, str]]:
    """S3.17: default encryption with AWS KMS keys.

    A bucket that receives S3 server access logs passes with SSE-S3: S3 delivers access logs only
    to a target whose default encryption is SSE-S3, never SSE-KMS.
    """
    log_targets = [b for b in resources if b.resource_type == BUCKET and _receives_access_logs(b, resources)]
    sse_s3_log_targets = {
        b.urn
        for b in log_targets
        if any(c.resource_type == ENCRYPTION and _configures(c, b) and _sse_s3_default(c.props) for c in resources)
    }
    for urn, complaint in _per_bucket(resources, ENCRYPTION, "default encryption is not aws:kms", _kms_default):
        if urn not in sse_s3_log_targets:
            yield urn, complaint


def _replicates(props: Any) -> bool:
    return any(
        as_dict(rule).get("status") == "Enabled" and as_dict(as_dict(rule).get("destination")).get("bucket")
        for rule in props.get("rules") or []
    )


def _replica_of_another(bucket: PolicyResource, resources: Sequence[PolicyResource]) -> bool:
    """Whether ``bucket`` is the destination of a replication configuration (its ``rules`` depend on it)."""
    return any(
        r.resource_type == REPLICATION and any(d.urn == bucket.urn for d in r.property_dependencies.get("rules", []))
        for r in resources
    )


def cross_region_replication(resources: Sequence[PolicyResource]) -> Iterable[tuple[str, str]]:
    """S3.7: a bucket replicates (an Enabled replication rule with a destination; pgha's destination
    is always the DR region's bucket, under the DR provider).

    Exempt: buckets that receive S3 server access logs — they hold the audit trail of a bucket in
    their own region (S3 delivers access logs only within a region), and the replicated bucket's
    replica has its own log bucket in the DR region — and the replica itself (it is the copy).
    """
    exempt = {
        b.urn
        for b in resources
        if b.resource_type == BUCKET and (_receives_access_logs(b, resources) or _replica_of_another(b, resources))
    }
    for urn, complaint in _per_bucket(
        resources, REPLICATION, "no cross-region replication (set pgha:drRegion)", _replicates
    ):
        if urn not in exempt:
            yield urn, complaint


POLICIES = [
    stack_rule("s3-tls-only", "S3.5", "S3 buckets accept only TLS requests", MANDATORY, tls_only),
    stack_rule("s3-public-access-block", "S3.8", "S3 buckets block all public access", MANDATORY, public_access_block),
    stack_rule("s3-versioning", "S3.14", "S3 buckets keep versions", MANDATORY, versioning),
    stack_rule("s3-kms-encryption", "S3.17", "S3 buckets encrypt by default with KMS", MANDATORY, kms_encryption),
    stack_rule(
        "s3-cross-region-replication",
        "S3.7",
        "S3 backup buckets replicate to another region",
        ADVISORY,
        cross_region_replication,
    ),
]
