"""Stack config validation: every bad key is named, and nothing is registered."""

from __future__ import annotations

import pytest

from components.config import (
    PRODUCTION_ENVIRONMENTS,
    ConfigError,
    parse_backup_window,
    parse_config,
    parse_maintenance_window,
    windows_overlap,
)
from pgha.ci.harness import run_program

# (overrides on the dev stack, the key the error must name, a phrase of the explanation)
INVALID = [
    ({"engine": "aurora"}, "pgha:engine", "one of rds, patroni"),
    ({"postgresVersion": "13"}, "pgha:postgresVersion", "from 14 to 18"),
    ({"postgresVersion": "17.2"}, "pgha:postgresVersion", "whole number"),
    ({"instanceClass": "m7g.large"}, "pgha:instanceClass", "db.m7g.large"),
    ({"allocatedStorage": "10"}, "pgha:allocatedStorage", "from 20 to 65536"),
    ({"allocatedStorage": "lots"}, "pgha:allocatedStorage", "whole number"),
    ({"maxAllocatedStorage": "10"}, "pgha:maxAllocatedStorage = 10:", "or at least 22 GiB"),
    # RDS wants the ceiling 10% above the allocated storage: 20 GiB (dev) needs 22, 1000 GiB needs 1100
    ({"maxAllocatedStorage": "21"}, "pgha:maxAllocatedStorage = 21:", "must be 0 (autoscaling off) or at least 22"),
    (
        {"allocatedStorage": "1000", "maxAllocatedStorage": "1099"},
        "pgha:maxAllocatedStorage = 1099:",
        "at least 1100 GiB, 10% above allocatedStorage (1000)",
    ),
    ({"multiAz": "yes"}, "pgha:multiAz", "true or false"),
    ({"multiAz": "1"}, "pgha:multiAz", "true or false"),
    ({"replicas": "6"}, "pgha:replicas", "from 0 to 5"),
    ({"replicas": "two"}, "pgha:replicas", "whole number"),
    # numbers are ASCII digits: \d and int() would also take Arabic-Indic and full-width digits
    ({"replicas": "\u0663"}, "pgha:replicas = '\u0663'", "in the digits 0-9"),
    ({"replicas": "\uff13"}, "pgha:replicas = '\uff13'", "in the digits 0-9"),
    ({"maxConnections": "\uff12\uff10\uff10"}, "pgha:maxConnections", "in the digits 0-9"),
    ({"drRegion": "eu-west-1"}, "pgha:drRegion", "must differ from aws:region"),
    ({"drRegion": "Europe"}, "pgha:drRegion", "AWS region"),
    ({"drRegion": "eu-central-\u0661"}, "pgha:drRegion", "AWS region"),
    ({"drPromoted": "true"}, "pgha:drPromoted", "needs pgha:drRegion"),
    ({"drPromoted": "yes"}, "pgha:drPromoted", "true or false"),
    ({"backupRetentionDays": "0"}, "pgha:backupRetentionDays", "from 1 to 35"),
    ({"backupRetentionDays": "36"}, "pgha:backupRetentionDays", "from 1 to 35"),
    ({"backupWindow": "3am"}, "pgha:backupWindow", "hh:mm-hh:mm"),
    ({"backupWindow": "03:00-03:15"}, "pgha:backupWindow", "at least 30 minutes"),
    ({"backupWindow": "0\u0663:00-04:00"}, "pgha:backupWindow", "hh:mm-hh:mm"),
    ({"maintenanceWindow": "sunday 5am"}, "pgha:maintenanceWindow", "ddd:hh:mm-ddd:hh:mm"),
    ({"maintenanceWindow": "mon:03:30-mon:04:30"}, "pgha:maintenanceWindow", "overlaps"),
    ({"maintenanceWindow": "sun:0\uff15:00-sun:06:00"}, "pgha:maintenanceWindow", "ddd:hh:mm-ddd:hh:mm"),
    ({"deletionProtection": "True"}, "pgha:deletionProtection", "true or false"),
    ({"vpcCidr": "10.0.0.0/33"}, "pgha:vpcCidr", "not a valid CIDR"),
    ({"vpcCidr": "8.8.0.0/16"}, "pgha:vpcCidr = '8.8.0.0/16'", "inside 10.0.0.0/8, 172.16.0.0/12"),
    # is_private would take loopback, link-local and reserved blocks: none of them is a VPC range
    ({"vpcCidr": "127.0.0.0/16"}, "pgha:vpcCidr = '127.0.0.0/16'", "192.168.0.0/16 or 100.64.0.0/10"),
    ({"vpcCidr": "169.254.0.0/16"}, "pgha:vpcCidr = '169.254.0.0/16'", "192.168.0.0/16 or 100.64.0.0/10"),
    ({"vpcCidr": "240.0.0.0/16"}, "pgha:vpcCidr = '240.0.0.0/16'", "192.168.0.0/16 or 100.64.0.0/10"),
    ({"vpcCidr": "100.128.0.0/16"}, "pgha:vpcCidr = '100.128.0.0/16'", "192.168.0.0/16 or 100.64.0.0/10"),
    ({"vpcCidr": "10.0.0.0/8"}, "pgha:vpcCidr = '10.0.0.0/8'", "a /16 to /24 IPv4 block"),
    ({"drVpcCidr": "127.0.0.0/16"}, "pgha:drVpcCidr = '127.0.0.0/16'", "192.168.0.0/16 or 100.64.0.0/10"),
    ({"vpcId": "vpc-0123456789abcdef0"}, "pgha:vpcId and pgha:subnetIds go together", "set both"),
    (
        {"vpcCidr": None, "vpcId": "vpc-0123456789abcdef0", "subnetIds": '["subnet-0123456789abcdef0"]'},
        "pgha:subnetIds",
        "at least 2 subnets",
    ),
    (
        {"vpcId": "vpc-0123456789abcdef0", "subnetIds": '["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]'},
        "pgha:vpcCidr and pgha:vpcId exclude each other",
        "create a VPC or bring one",
    ),
    ({"subnetIds": "subnet-1,subnet-2"}, "pgha:subnetIds", "a list of ids"),
    ({"allowedCidrs": '["0.0.0.0/0"]'}, "pgha:allowedCidrs", "whole internet"),
    ({"allowedCidrs": '["::/0"]'}, "pgha:allowedCidrs", "whole internet"),
    ({"allowedCidrs": '["10.1.2.3/16"]'}, "pgha:allowedCidrs", "not a valid CIDR"),
    # the security group rules are IPv4 (cidr_ipv4) in an IPv4-only VPC: AWS would refuse the rule at `pulumi up`
    ({"allowedCidrs": '["10.0.0.0/16", "2001:db8::/32"]'}, "pgha:allowedCidrs", "2001:db8::/32 is an IPv6 block"),
    # AWS refuses two identical rules (InvalidPermission.Duplicate); 10.0.0.5 is 10.0.0.5/32
    (
        {"allowedCidrs": '["10.0.0.5/32", "10.1.0.0/16", "10.0.0.5"]'},
        "pgha:allowedCidrs",
        "10.0.0.5/32 is listed twice",
    ),
    ({"allowedCidrs": "10.0.0.0/16"}, "pgha:allowedCidrs", "a list of CIDR blocks"),
    ({"alarmEmail": "oncall"}, "pgha:alarmEmail", "an email address"),
    ({"proxy": "on"}, "pgha:proxy", "true or false"),
    ({"schemaRunner": "ssh"}, "pgha:schemaRunner", "one of lambda, off"),
    ({"tags": '["a"]'}, "pgha:tags", "a map of strings"),
    ({"tags": '{"aws:owner": "me"}'}, "pgha:tags", "reserved by AWS"),
    ({"replica": "2"}, "pgha:replica is not a pgha setting", "known:"),
    ({"aws:region": None}, "aws:region is not set", "pulumi config set aws:region"),
    ({"aws:region": "eu-west-\u0661"}, "aws:region = 'eu-west-\u0661'", "an AWS region"),
    # Lambda keeps 100 of the default quota of 1000 unreserved
    ({"schemaReservedConcurrency": "901"}, "pgha:schemaReservedConcurrency = '901'", "from 1 to 900"),
    ({"schemaReservedConcurrency": "0"}, "pgha:schemaReservedConcurrency = '0'", "from 1 to 900"),
    # VPC endpoint service names (cn.com.amazonaws...) and some service principals differ there
    ({"aws:region": "cn-north-1"}, "aws:region = 'cn-north-1'", "not aws-cn"),
    ({"drRegion": "us-iso-east-1"}, "pgha:drRegion = 'us-iso-east-1'", "not aws-iso"),
]


@pytest.mark.parametrize(("overrides", "key", "phrase"), INVALID, ids=[f"{k}:{p}" for _, k, p in INVALID])
def test_invalid_config_names_the_key_and_registers_nothing(overrides: dict, key: str, phrase: str) -> None:
    plan = run_program("dev", overrides, check=False)
    assert isinstance(plan.error, ConfigError), plan.error
    message = str(plan.error)
    assert key in message
    assert phrase in message
    assert plan.resources == []


def test_every_bad_key_is_reported_at_once() -> None:
    plan = run_program("prod", {"replicas": "9", "multiAz": "maybe", "postgresVersion": "12"}, check=False)
    assert isinstance(plan.error, ConfigError)
    assert len(plan.error.problems) == 3
    for key in ("pgha:replicas", "pgha:multiAz", "pgha:postgresVersion"):
        assert any(key in problem for problem in plan.error.problems)


def test_a_rejected_key_is_not_cross_checked_as_missing_or_as_its_default() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(
            {
                "vpcId": "vpc-0123456789abcdef0",
                "subnetIds": '["subnet-01", "subnet-02"]',
                "allocatedStorage": "9",
                "maxAllocatedStorage": "50",
            },
            project="pgha",
            stack="t",
            region="eu-west-1",
        )
    assert len(raised.value.problems) == 2, raised.value.problems
    assert "'subnet-01' is not a subnet id (subnet- and 8 to 17 hex digits)" in raised.value.problems[1]


@pytest.mark.parametrize(("storage", "ceiling"), [("20", "22"), ("1000", "1100"), ("1001", "1102"), ("1000", "0")])
def test_autoscaling_ceiling_10_percent_above_the_storage_or_off_is_accepted(storage: str, ceiling: str) -> None:
    cfg = parse_config(
        {"allocatedStorage": storage, "maxAllocatedStorage": ceiling}, project="pgha", stack="t", region="eu-west-1"
    )
    assert cfg.max_allocated_storage == int(ceiling)


def test_error_shows_the_bad_value() -> None:
    with pytest.raises(ConfigError, match=r"pgha:replicas = '17'"):
        parse_config({"replicas": "17"}, project="pgha", stack="t", region="eu-west-1")


def test_defaults_are_the_secure_choice() -> None:
    cfg = parse_config({}, project="pgha", stack="t", region="eu-west-1")
    assert cfg.multi_az and cfg.deletion_protection
    assert cfg.allowed_cidrs == ()
    assert cfg.backup_retention_days >= 7
    assert cfg.postgres_version == 17


def test_bring_your_own_vpc_clears_the_default_cidr() -> None:
    cfg = parse_config(
        {"vpcId": "vpc-0123456789abcdef0", "subnetIds": '["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]'},
        project="pgha",
        stack="t",
        region="eu-west-1",
    )
    assert cfg.vpc_cidr is None
    assert cfg.subnet_ids == ("subnet-0123456789abcdef0", "subnet-0123456789abcdef1")


@pytest.mark.parametrize(
    ("backup", "maintenance", "overlap"),
    [
        ("03:00-04:00", "sun:05:00-sun:06:00", False),
        ("03:00-04:00", "wed:03:30-wed:04:30", True),
        ("23:30-00:30", "tue:00:00-tue:00:45", True),  # backup window crosses midnight
        ("23:30-00:30", "sun:23:45-mon:00:15", True),  # maintenance crosses the week boundary
        ("01:00-01:30", "sat:01:30-sat:02:00", False),  # touching, not overlapping
    ],
)
def test_window_overlap(backup: str, maintenance: str, overlap: bool) -> None:
    assert windows_overlap(parse_backup_window(backup), parse_maintenance_window(maintenance)) is overlap


@pytest.mark.parametrize(
    "cidr", ["10.255.0.0/16", "172.31.0.0/16", "192.168.10.0/24", "100.64.0.0/16", "100.127.255.0/24"]
)
def test_vpc_cidr_takes_rfc1918_and_the_shared_address_space(cidr: str) -> None:
    cfg = parse_config({"vpcCidr": cidr, "drVpcCidr": cidr}, project="pgha", stack="t", region="eu-west-1")
    assert (cfg.vpc_cidr, cfg.dr_vpc_cidr) == (cidr, cidr)


def test_patroni_does_not_cross_check_the_rds_only_keys_it_ignores() -> None:
    cfg = parse_config(
        {
            "engine": "patroni",
            "maintenanceWindow": "mon:03:00-mon:04:00",
            "maxAllocatedStorage": "10",
            "drPromoted": "true",
        },
        project="pgha",
        stack="t",
        region="eu-west-1",
    )
    (warning,) = cfg.warnings
    for key in ("pgha:maxAllocatedStorage", "pgha:drPromoted", "pgha:maintenanceWindow"):
        assert key in warning


def test_rds_warns_about_the_keys_it_ignores() -> None:
    """`pgha plan --set 'patroni={"nodes":5}' --set drVpcCidr=...` on an RDS stack without a DR region."""
    plan = run_program("dev", {"patroni": '{"nodes": 5}', "drVpcCidr": "10.41.0.0/16"})
    assert plan.error is None and len(plan.warnings) == 2, plan.warnings
    assert "engine rds ignores pgha:patroni" in plan.warnings[0]
    assert "pgha:drVpcCidr = '10.41.0.0/16' is ignored" in plan.warnings[1] and "pgha:drRegion" in plan.warnings[1]
    # with a DR region the DR replica's VPC is used: nothing to say
    assert (
        parse_config(
            {"drRegion": "eu-central-1", "drVpcCidr": "10.41.0.0/16"}, project="pgha", stack="t", region="eu-west-1"
        ).warnings
        == ()
    )


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"drRegion": "eu-west-1"}, "pgha:drRegion = 'eu-west-1': must differ from aws:region"),
        ({"vpcId": "vpc-0123456789abcdef0"}, "pgha:vpcId and pgha:subnetIds go together"),
    ],
)
def test_patroni_still_cross_checks_the_keys_it_reads(overrides: dict, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({"engine": "patroni", **overrides}, project="pgha", stack="t", region="eu-west-1")
    assert any(problem in p for p in raised.value.problems), raised.value.problems


def test_production_is_the_environment_tag_the_policy_pack_reads() -> None:
    """The program and the policy pack (which imports nothing from components) agree on what is production."""
    from pgha.ci.policy.common import PRODUCTION

    assert set(PRODUCTION_ENVIRONMENTS) == PRODUCTION
    production = lambda tags: parse_config({"tags": tags}, project="pgha", stack="t", region="eu-west-1").production
    assert production('{"environment": "prod"}') and production('{"environment": "Production"}')
    assert not production('{"environment": "dev"}') and not production("{}")
