"""Reading Secrets Manager: the one reader the node bootstrap, the CLI and the post-deploy hook share.

boto3 only (part of the Lambda runtime), imported when a secret is read: the hook bundle carries this
module. Errors name the secret, never its value.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.client import BaseClient


class SecretError(RuntimeError):
    """A secret could not be read, or holds no JSON object; the message names the ARN, never a value."""


def region_of(secret_arn: str) -> str | None:
    """The region an ARN names (``arn:aws:secretsmanager:REGION:...``); None for a bare name."""
    return secret_arn.split(":")[3] if secret_arn.startswith("arn:") else None


def secrets_client(region: str | None = None, **options: Any) -> BaseClient:
    """A Secrets Manager client for ``region`` (``options``: endpoint_url, verify, config, as boto3 takes them)."""
    import boto3

    return boto3.client("secretsmanager", region_name=region, **options)


def read_secret_json(secret_arn: str, client: BaseClient | None = None) -> dict[str, Any]:
    """The JSON object a secret holds, read with ``client`` (default: one for the ARN's region).

    Every secret pgha reads is a JSON object (passwords, TLS material, the RDS master secret), so anything
    else is an error, as is a read AWS refuses.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        value = (client or secrets_client(region_of(secret_arn))).get_secret_value(SecretId=secret_arn)
    except (BotoCoreError, ClientError) as err:
        raise SecretError(f"cannot read secret {secret_arn}: {err}") from None
    try:
        secret = json.loads(value["SecretString"])
    except (KeyError, ValueError):
        secret = None
    if not isinstance(secret, dict):
        raise SecretError(f"secret {secret_arn} is not a JSON object")
    return secret
