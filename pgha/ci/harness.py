"""Run the Pulumi program in-process under ``pulumi.runtime.set_mocks``.

The one way tests, ``pgha plan`` and the policy checks see what ``pulumi up`` would
register without a Pulumi CLI or cloud credentials: the real SDK runs the real
``__main__.py`` with a stack's config, and every registration is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import json
import logging
import runpy
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml

from components.partitions import partition_of

PROJECT_DIR = Path(__file__).resolve().parents[2]
ACCOUNT_ID = "123456789012"

#: Bring-your-own VPCs the mocked data sources know (``pgha:vpcId``), by what their subnets can reach.
#: Any other VPC id routes 0.0.0.0/0 through a NAT gateway and has no endpoints.
BYO_VPC_WITH_NAT = "vpc-0123456789abcdef0"
BYO_VPC_WITH_ENDPOINT = "vpc-0e0d0e0d0e0d0e0d0"
BYO_VPC_WITHOUT_EGRESS = "vpc-0000000000000dead"
#: Security group of the mocked Secrets Manager endpoint of BYO_VPC_WITH_ENDPOINT.
BYO_ENDPOINT_SG = "sg-0e0d0e0d0e0d0e0d0"


#: Zone name -> the state the mocked ``getAvailabilityZones`` reports for it (``available``, ``information``,
#: ``impaired``, ``unavailable``); zones not listed are available. Set it with :func:`zone_states`.
ZONE_STATES: dict[str, str] = {}


#: The account's Lambda concurrency quota the mocked account has (``quota``): AWS's default. New accounts get
#: less (10 or 50); set it with :func:`lambda_concurrency_quota`.
LAMBDA_CONCURRENCY: dict[str, int] = {"quota": 1000}


@contextlib.contextmanager
def lambda_concurrency_quota(quota: int) -> Iterator[None]:
    """Within the block, the mocked account's concurrent-executions quota is ``quota`` (a new account's)."""
    saved = LAMBDA_CONCURRENCY["quota"]
    LAMBDA_CONCURRENCY["quota"] = quota
    try:
        yield
    finally:
        LAMBDA_CONCURRENCY["quota"] = saved


#: ``carry``: the run models an update of a stack deployed before (``pgha diff``), not a new stack: a resource
#: renamed with an alias then keeps the aliased state's ids and ARNs, as the engine carries that state over.
ALIASED_STATE: dict[str, bool] = {"carry": False}


@contextlib.contextmanager
def carrying_aliased_state() -> Iterator[None]:
    """Within the block, runs model an update of an existing stack (see :data:`ALIASED_STATE`)."""
    saved = ALIASED_STATE["carry"]
    ALIASED_STATE["carry"] = True
    try:
        yield
    finally:
        ALIASED_STATE["carry"] = saved


@contextlib.contextmanager
def zone_states(states: Mapping[str, str]) -> Iterator[None]:
    """Within the block, the mocked region reports these AZ states (an AZ impaired during an incident)."""
    saved = dict(ZONE_STATES)
    ZONE_STATES.update(states)
    try:
        yield
    finally:
        ZONE_STATES.clear()
        ZONE_STATES.update(saved)


class Secret:
    """A value Pulumi treats as secret; shown as ``[secret]`` and never printed."""

    def __init__(self, value: Any):
        self.value = value

    def __repr__(self) -> str:
        return "[secret]"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other.value == self.value

    def __hash__(self) -> int:
        return hash(repr(self.value))


@dataclass
class RegisteredResource:
    """One resource the program registered, as the engine received it."""

    type: str
    name: str
    urn: str
    parent: str
    provider: str
    custom: bool
    inputs: dict[str, Any]
    dependencies: list[str]
    #: ``protect=True``: the engine refuses to delete or replace it, even on a forced ``pulumi up``.
    protect: bool = False
    #: Input name -> URNs it was computed from (what a replacement of those URNs changes).
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)
    #: The other resource options the engine acts on in a diff: ignoreChanges, replaceOnChanges,
    #: deleteBeforeReplace, retainOnDelete.
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The resource as plain JSON, secrets replaced by ``[secret]``."""
        return {
            "type": self.type,
            "name": self.name,
            "urn": self.urn,
            "parent": self.parent,
            "provider": self.provider,
            "custom": self.custom,
            "inputs": redact(self.inputs),
            "dependencies": self.dependencies,
            "protect": self.protect,
        }


@dataclass
class Plan:
    """What one run of the program registered, exported, or failed with."""

    stack: str
    resources: list[RegisteredResource] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    #: What the program logged at warning level or above (``pulumi.log.warn``).
    warnings: list[str] = field(default_factory=list)
    error: BaseException | None = None
    #: The region of the stack's config (``aws:region``), and of each explicit AWS provider by URN.
    region: str = "eu-west-1"
    provider_regions: dict[str, str] = field(default_factory=dict)

    def of_type(self, type_: str) -> list[RegisteredResource]:
        """Resources of one Pulumi type token, in registration order."""
        return [r for r in self.resources if r.type == type_]

    def region_of(self, resource: RegisteredResource) -> str:
        """The region a resource is created in: its AWS provider's, else the stack's."""
        return self.provider_regions.get(resource.provider.rsplit("::", 1)[0], self.region)

    def get(self, name: str) -> RegisteredResource:
        """The resource with this logical name (names are unique within a stack)."""
        matches = [r for r in self.resources if r.name == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} resources named {name!r}")
        return matches[0]


def redact(value: Any) -> Any:
    """A JSON-able copy of ``value`` with every secret replaced by ``[secret]``."""
    if isinstance(value, Secret):
        return "[secret]"
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if hasattr(value, "assets"):  # AssetArchive
        return {"archive": {name: redact(asset) for name, asset in sorted(value.assets.items())}}
    for kind in ("path", "text", "uri"):  # FileAsset / StringAsset / RemoteAsset and archives
        if hasattr(value, kind):
            return {kind: getattr(value, kind)}
    return repr(value)


def plain_strings(value: Any) -> Iterator[str]:
    """Every string in ``value`` that is not inside a secret: what state would hold in plaintext."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from plain_strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from plain_strings(item)
    elif not isinstance(value, Secret) and hasattr(value, "text"):  # StringAsset and friends
        yield str(value.text)


# --- stack config -----------------------------------------------------------------------


def project_name(project_dir: Path = PROJECT_DIR) -> str:
    """The project name from Pulumi.yaml."""
    return yaml.safe_load((project_dir / "Pulumi.yaml").read_text())["name"]


def _as_pulumi_string(value: Any) -> str:
    """Config values as Pulumi hands them to a program: scalars as text, objects as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _qualified(key: str, project: str) -> str:
    return key if ":" in key else f"{project}:{key}"


def stack_config(
    stack: str, overrides: Mapping[str, Any] | None = None, project_dir: Path = PROJECT_DIR
) -> tuple[dict[str, str], list[str]]:
    """A stack's config as Pulumi would pass it: ``Pulumi.<stack>.yaml`` plus overrides.

    Keys without a namespace belong to the project. An override of ``None`` removes the
    key. ``secure:`` values cannot be decrypted here: they are passed as a placeholder
    and listed as secret keys.
    """
    project = project_name(project_dir)
    path = project_dir / f"Pulumi.{stack}.yaml"
    if not path.exists():
        known = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml"))
        raise FileNotFoundError(f"no stack {stack!r}: {path.name} does not exist (stacks: {', '.join(known)})")
    raw = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in raw.items():
        key = _qualified(key, project)
        if isinstance(value, dict) and set(value) == {"secure"}:
            secret_keys.append(key)
            value = "[encrypted in the stack file]"
        config[key] = _as_pulumi_string(value)
    for key, value in (overrides or {}).items():
        key = _qualified(key, project)
        if value is None:
            config.pop(key, None)
        else:
            config[key] = _as_pulumi_string(value)
    return config, secret_keys


# --- mocks ------------------------------------------------------------------------------


def _fake_id(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:17]


def _computed_state(args: Any, region: str) -> dict[str, Any]:
    """Plausible provider-computed outputs for the resource types the program reads back, in ``region``
    (its provider's) and that region's partition."""
    from pulumi.runtime import rpc

    inputs = dict(args.inputs)
    part = partition_of(region).name
    service = args.typ.split(":")[1].split("/")[0] if args.typ.startswith("aws:") else "resource"
    state: dict[str, Any] = {
        "arn": f"arn:{part}:{service}:{region}:{ACCOUNT_ID}:{args.name}",
        "id": args.name,
        "name": inputs.get("name", args.name),
        **inputs,
    }
    if args.typ == "aws:rds/instance:Instance":
        identifier = inputs.get("identifier", args.name)
        state.update(
            arn=f"arn:{part}:rds:{region}:{ACCOUNT_ID}:db:{identifier}",
            identifier=identifier,
            address=f"{identifier}.cmocked.{region}.rds.amazonaws.com",
            endpoint=f"{identifier}.cmocked.{region}.rds.amazonaws.com:5432",
            port=5432,
        )
        if inputs.get("manageMasterUserPassword"):
            state["masterUserSecrets"] = [
                {
                    "secretArn": f"arn:{part}:secretsmanager:{region}:{ACCOUNT_ID}:secret:"
                    f"rds!db-{_fake_id(identifier)}",
                    "kmsKeyId": inputs.get("masterUserSecretKmsKeyId", ""),
                    "secretStatus": "active",
                }
            ]
    elif args.typ == "aws:kms/key:Key":
        state.update(keyId=_fake_id(args.name), arn=f"arn:{part}:kms:{region}:{ACCOUNT_ID}:key/{_fake_id(args.name)}")
    elif args.typ == "aws:ec2/vpc:Vpc":
        state.update(id=f"vpc-{_fake_id(args.name)}")
    elif args.typ == "aws:ec2/subnet:Subnet":
        state.update(id=f"subnet-{_fake_id(args.name)}")
    elif args.typ == "aws:ec2/securityGroup:SecurityGroup":
        state.update(id=f"sg-{_fake_id(args.name)}")
    elif args.typ in ("aws:rds/proxy:Proxy", "aws:lb/loadBalancer:LoadBalancer"):
        state.update(
            endpoint=f"{args.name}.mocked.{region}.amazonaws.com",
            dnsName=f"{args.name}.elb.amazonaws.com",
            arnSuffix=f"net/{args.name}/{_fake_id(args.name)}",
        )
    elif args.typ == "aws:lb/targetGroup:TargetGroup":
        state.update(arnSuffix=f"targetgroup/{args.name}/{_fake_id(args.name)}")
    elif args.typ == "aws:ec2/networkInterface:NetworkInterface":
        digest = int(_fake_id(args.name), 16)
        state.update(id=f"eni-{_fake_id(args.name)}", privateIp=f"10.40.{digest % 250}.{10 + digest % 200}")
    elif args.typ == "aws:ebs/volume:Volume":
        state.update(id=f"vol-{_fake_id(args.name)}")
    elif args.typ == "aws:s3/bucket:Bucket":
        state.update(bucket=f"{args.name}-{_fake_id(args.name)[:8]}")
    elif args.typ == "aws:ec2/launchTemplate:LaunchTemplate":
        state.update(id=f"lt-{_fake_id(args.name)}", latestVersion=1)
    elif args.typ == "aws:lambda/invocation:Invocation":
        state.update(result=json.dumps({"applied": [], "alreadyApplied": []}))
    elif args.typ in ("tls:index/selfSignedCert:SelfSignedCert", "tls:index/locallySignedCert:LocallySignedCert"):
        state.update(certPem=f"-----BEGIN CERTIFICATE-----\nmock {args.name}\n-----END CERTIFICATE-----\n")
    elif args.typ == "random:index/randomPassword:RandomPassword":
        # at least as long as asked for, like the real provider
        padding = hashlib.sha256(args.name.encode()).hexdigest() * 4
        value = f"mock-password-{_fake_id(args.name)}"
        state.update(result=rpc.wrap_rpc_secret(value + padding[: max(0, int(inputs.get("length", 0)) - len(value))]))
    elif args.typ == "random:index/randomId:RandomId":
        state.update(hex=_fake_id(args.name)[: 2 * int(inputs.get("byteLength", 4))])
    elif args.typ == "aws:secretsmanager/secretVersion:SecretVersion":
        # a new value is a new version (as AWS assigns one per PutSecretValue): the digest covers the secret's
        # value (a mock's), which repr would show only as [secret]
        state.update(
            versionId=_fake_id(
                json.dumps(
                    _normalize(inputs), default=lambda v: v.value if isinstance(v, Secret) else repr(v), sort_keys=True
                )
            )
        )
    return state


class _InvokeFailure(Exception):
    """A mocked data source that fails the way the provider's does (e.g. nothing matched)."""


def _invoke_result(token: str, args: dict[str, Any], region: str) -> dict[str, Any]:
    """Canned answers for the data sources the program calls, through a provider of ``region``."""
    part, dns_suffix = partition_of(region).name, partition_of(region).dns_suffix
    if token == "aws:index/getCallerIdentity:getCallerIdentity":
        return {"accountId": ACCOUNT_ID, "arn": f"arn:{part}:iam::{ACCOUNT_ID}:user/pgha", "userId": "AIDAMOCK"}
    if token == "aws:index/getPartition:getPartition":
        return {
            "partition": part,
            "dnsSuffix": dns_suffix,
            "id": part,
            "reverseDnsPrefix": ".".join(reversed(dns_suffix.split("."))),
        }
    if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
        region = args.get("region") or region
        names = [f"{region}{suffix}" for suffix in "abc"]
        if args.get("state"):  # like the provider: only the zones in that state
            names = [n for n in names if ZONE_STATES.get(n, "available") == args["state"]]
        return {"names": names, "zoneIds": [f"z-{n}" for n in names], "id": region}
    if token == "aws:index/getRegion:getRegion":
        return {"name": region, "region": region, "id": region}
    if token == "aws:ec2/getSubnet:getSubnet":
        subnet = args.get("id", "subnet-0")
        return {"id": subnet, "availabilityZone": f"{region}{'abc'[int(subnet[-1], 16) % 3]}", "vpcId": "vpc-mock"}
    if token == "aws:ec2/getVpc:getVpc":
        return {"id": args.get("id"), "cidrBlock": "10.99.0.0/16"}
    if token == "aws:ec2/getRouteTables:getRouteTables":
        # one route table per VPC, explicitly associated with every subnet
        return {"ids": [f"rtb-{args.get('vpcId', 'vpc-0')[4:]}"], "vpcId": args.get("vpcId")}
    if token == "aws:ec2/getRouteTable:getRouteTable":
        vpc = f"vpc-{args.get('routeTableId', 'rtb-0')[4:]}"
        routes = [{"cidrBlock": "10.99.0.0/16", "gatewayId": "local"}]
        if vpc not in (BYO_VPC_WITH_ENDPOINT, BYO_VPC_WITHOUT_EGRESS):
            routes.append({"cidrBlock": "0.0.0.0/0", "natGatewayId": f"nat-{vpc[4:]}"})
        return {"routeTableId": args.get("routeTableId"), "vpcId": vpc, "routes": routes}
    if token == "aws:ec2/getVpcEndpoint:getVpcEndpoint":
        if args.get("vpcId") != BYO_VPC_WITH_ENDPOINT:
            raise _InvokeFailure("no matching EC2 VPC Endpoint found")
        return {
            "id": "vpce-0e0d0e0d0e0d0e0d0",
            "vpcId": args["vpcId"],
            "serviceName": args.get("serviceName"),
            "state": "available",
            "privateDnsEnabled": True,
            "securityGroupIds": [BYO_ENDPOINT_SG],
            "vpcEndpointType": "Interface",
        }
    if token == "aws:ec2/getAmi:getAmi":
        return {"id": "ami-0123456789abcdef0", "name": "debian-12-arm64-mock", "architecture": "arm64"}
    return {}


def _normalize(value: Any) -> Any:
    """Inputs as the program wrote them: secrets as :class:`Secret`, whole numbers as ints
    (the wire format carries every number as a double)."""
    from pulumi.runtime import rpc

    if rpc.is_rpc_secret(value):
        return Secret(_normalize(rpc.unwrap_rpc_secret(value)))
    if isinstance(value, dict):
        return {k: _normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _options(request: Any, urn: str) -> dict[str, Any]:
    """The resource options of a RegisterResource request that change how a diff is applied
    (``protect`` has its own field)."""
    return {
        "ignoreChanges": list(request.ignoreChanges),
        "replaceOnChanges": list(request.replaceOnChanges),
        "deleteBeforeReplace": bool(request.deleteBeforeReplace),
        "retainOnDelete": bool(request.retainOnDelete),
        "aliases": _alias_urns(request, urn),
    }


def _alias_urns(request: Any, urn: str) -> list[str]:
    """The URNs the resource's ``aliases`` name: the state entries the engine would take as this resource.

    An alias given as a URN is that URN; an alias spec that renames only (``pulumi.Alias(name=...)``, same
    type, parent, stack and project) is this URN with the old name. Other specs are not resolved here.
    """
    urns = [alias.urn for alias in request.aliases if alias.WhichOneof("alias") == "urn"]
    for alias in request.aliases:
        spec = alias.spec if alias.WhichOneof("alias") == "spec" else None
        if (
            spec is not None
            and spec.name
            and not (spec.type or spec.stack or spec.project or spec.parentUrn or spec.noParent)
        ):
            urns.append(f"{urn.rsplit('::', 1)[0]}::{spec.name}")
    return [*urns, *request.aliasURNs]


def _recording_monitor(records: list[RegisteredResource], default_region: str, regions: dict[str, str]) -> Any:
    """A mock monitor that records every registration in ``records`` and each AWS provider's region in
    ``regions`` (by URN), answering resources and data sources in their provider's region."""
    import pulumi
    from pulumi.runtime import mocks, rpc

    #: Logical name -> the name it had before, for a resource renamed with an alias: when the run models an
    #: update (:data:`ALIASED_STATE`), its ids, ARNs and endpoints stay those of the old name.
    renamed: dict[str, str] = {}

    def region_of(provider_reference: str | None) -> str:
        return regions.get((provider_reference or "").rsplit("::", 1)[0], default_region)

    class PlanMocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
            args.name = renamed.get(args.name, args.name)
            state = _computed_state(args, region_of(args.provider))
            return str(state.get("id", args.name)), state

        def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list]:
            try:
                return _invoke_result(args.token, dict(args.args), region_of(args.provider)), []
            except _InvokeFailure as failure:  # as the provider reports a data source that found nothing
                return {}, [("", str(failure))]

    class RecordingMonitor(mocks.MockMonitor):
        def RegisterResource(self, request: Any) -> Any:
            if ALIASED_STATE["carry"]:
                renamed.update(
                    (request.name, alias.spec.name)
                    for alias in request.aliases
                    if alias.WhichOneof("alias") == "spec" and alias.spec.name
                )
            response = super().RegisterResource(request)
            if request.type == "pulumi:providers:aws":
                region = rpc.deserialize_properties(request.object, keep_internal=False).get("region")
                regions[response.urn] = region or default_region
            if request.type != "pulumi:pulumi:Stack":
                records.append(
                    RegisteredResource(
                        type=request.type,
                        name=request.name,
                        urn=response.urn,
                        parent=request.parent,
                        provider=request.provider,
                        custom=bool(request.custom),
                        inputs=_normalize(rpc.deserialize_properties(request.object, keep_internal=False)),
                        dependencies=sorted(set(request.dependencies)),
                        protect=request.HasField("protect") and bool(request.protect),
                        property_dependencies={
                            key: sorted(set(deps.urns)) for key, deps in request.propertyDependencies.items()
                        },
                        options=_options(request, response.urn),
                    )
                )
            return response

    return RecordingMonitor(PlanMocks())


class _CollectWarnings(logging.Handler):
    def __init__(self, sink: list[str]):
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record.getMessage())


def _engine_logger(sink: list[str]) -> logging.Logger:
    """A logger for the mock engine that keeps the program's warnings in ``sink``."""
    logger = logging.getLogger(f"pgha.ci.harness.engine.{id(sink)}")
    logger.propagate = False
    logger.setLevel(logging.WARNING)
    logger.addHandler(_CollectWarnings(sink))
    return logger


def _resolve(value: Any, loop: asyncio.AbstractEventLoop) -> Any:
    import pulumi

    output = pulumi.Output.from_input(value)
    resolved = loop.run_until_complete(output.future())
    return Secret(resolved) if loop.run_until_complete(output.is_secret()) else resolved


def _run_in_context(stack: str, config: dict[str, str], secret_keys: list[str], project_dir: Path, plan: Plan) -> None:
    import pulumi
    from pulumi.runtime.config import set_all_config
    from pulumi.runtime.stack import Stack, wait_for_rpcs

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        pulumi.runtime.set_mocks(
            None,  # pyright: ignore[reportArgumentType] - replaced by the recording monitor
            project=project_name(project_dir),
            stack=stack,
            preview=False,
            monitor=_recording_monitor(plan.resources, plan.region, plan.provider_regions),
            logger=_engine_logger(plan.warnings),
        )
        # Pulumi's settings fall back to process-wide defaults; this run gets its own pending-output set
        pulumi.runtime.settings.SETTINGS.outputs = set()  # pyright: ignore[reportAttributeAccessIssue]
        set_all_config(config, secret_keys)
        sys.path.insert(0, str(project_dir))
        try:
            runpy.run_path(str(project_dir / "__main__.py"), run_name="__main__")
            loop.run_until_complete(wait_for_rpcs())
            root = cast(Stack, pulumi.runtime.settings.get_root_resource())  # the program's stack, once it ran
            plan.outputs = {name: _resolve(value, loop) for name, value in root.outputs.items()}
        finally:
            sys.path.remove(str(project_dir))
    except BaseException as err:  # handed to the caller through Plan.error
        plan.error = err
        _drain(loop)
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
        asyncio.set_event_loop(None)


def _drain(loop: asyncio.AbstractEventLoop) -> None:
    """Let the registrations a failed program left in flight finish; their errors are the program's."""
    from pulumi.runtime.stack import wait_for_rpcs

    with contextlib.suppress(Exception):
        loop.run_until_complete(wait_for_rpcs())


def run_program(
    stack: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    check: bool = True,
    project_dir: Path = PROJECT_DIR,
) -> Plan:
    """Run ``__main__.py`` for ``stack`` under mocks and return what it registered.

    ``overrides`` sets or (with ``None``) removes config keys; bare keys are ``pgha:``
    keys. With ``check`` (the default) a failing program raises its error; otherwise the
    error is returned in ``Plan.error`` along with whatever was registered before it.
    """
    config, secret_keys = stack_config(stack, overrides, project_dir)
    plan = Plan(stack=stack, region=config.get("aws:region") or "eu-west-1")
    # a fresh context per run: Pulumi keeps its settings, root stack and config in context variables
    contextvars.Context().run(_run_in_context, stack, config, secret_keys, project_dir, plan)
    if plan.error is None:
        plan.error = _refused(plan)
    if check and plan.error is not None:
        raise plan.error
    return plan


def _refused(plan: Plan) -> BaseException | None:
    """What ``pulumi up`` would fail with although the mocks accepted it: AWS's and the provider's refusals."""
    from pgha.ci.aws_rules import AwsRefusalError, refusals

    found = refusals(plan)
    return AwsRefusalError(found) if found else None
