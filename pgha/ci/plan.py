"""Render what the program registers: a readable resource tree, or JSON for machines."""

from __future__ import annotations

import json
from typing import Any

from rich.markup import escape
from rich.tree import Tree

from pgha.ci.harness import Plan, RegisteredResource, Secret, redact

#: The inputs worth showing per type in the tree; everything is in ``--json``.
KEY_PROPERTIES: dict[str, tuple[str, ...]] = {
    "aws:rds/instance:Instance": (
        "identifier",
        "engineVersion",
        "instanceClass",
        "multiAz",
        "availabilityZone",
        "replicateSourceDb",
        "storageEncrypted",
        "allocatedStorage",
        "maxAllocatedStorage",
        "backupRetentionPeriod",
        "deletionProtection",
    ),
    "aws:rds/parameterGroup:ParameterGroup": ("family",),
    "aws:kms/key:Key": ("enableKeyRotation",),
    "aws:ec2/vpc:Vpc": ("cidrBlock",),
    "aws:ec2/subnet:Subnet": ("cidrBlock", "availabilityZone"),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": (
        "fromPort",
        "cidrIpv4",
        "referencedSecurityGroupId",
        "description",
    ),
    "aws:cloudwatch/metricAlarm:MetricAlarm": ("metricName", "comparisonOperator", "threshold"),
    "aws:cloudwatch/logGroup:LogGroup": ("name", "retentionInDays"),
    "aws:rds/proxy:Proxy": ("engineFamily", "requireTls"),
    "pulumi:providers:aws": ("region",),
    "aws:lambda/function:Function": ("runtime", "handler", "timeout"),
    "aws:lambda/invocation:Invocation": ("triggers",),
    "aws:ec2/launchTemplate:LaunchTemplate": ("instanceType",),
    "aws:lb/targetGroup:TargetGroup": ("port", "healthCheck"),
}


def _label(resource: RegisteredResource) -> str:
    """Name, type and key inputs as Rich markup; values are escaped, or ``[secret]`` would print as nothing."""
    props = []
    for key in KEY_PROPERTIES.get(resource.type, ()):
        value = resource.inputs.get(key)
        if value is not None and value != "":
            shown = "[secret]" if isinstance(value, Secret) else json.dumps(redact(value))
            props.append(f"{key}={shown}")
    type_ = f"[dim]{escape(resource.type)}[/dim]"
    return f"[bold]{escape(resource.name)}[/bold] {type_}" + (f"  {escape(' '.join(props))}" if props else "")


def plan_tree(plan: Plan) -> Tree:
    """The resources as a tree under the stack, following each resource's parent."""
    root = Tree(f"[bold]stack {plan.stack}[/bold] ({len(plan.resources)} resources)")
    nodes: dict[str, Tree] = {}
    for resource in plan.resources:
        parent = nodes.get(resource.parent, root)
        nodes[resource.urn] = parent.add(_label(resource))
    return root


def outputs_tree(plan: Plan) -> Tree:
    """The stack outputs, secrets redacted."""
    tree = Tree("[bold]outputs[/bold]")
    for name, value in plan.outputs.items():
        tree.add(escape(f"{name}: {json.dumps(redact(value))}"))
    return tree


def plan_json(plan: Plan) -> dict[str, Any]:
    """The plan as JSON: every resource (type, name, inputs, ...) and the outputs, secrets redacted."""
    return {
        "stack": plan.stack,
        "resources": [resource.to_json() for resource in plan.resources],
        "outputs": redact(plan.outputs),
    }
