"""RDS drills against moto's server mode on a free loopback port, with instances named the way the stack names them.

Each test deploys its own fake stack (primary, replicas, DR replica) into a fresh moto server, runs
the real CLI, and checks what changed in the (fake) AWS account and what the report says.
"""

from __future__ import annotations

import json
import re
import shutil
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer
from typer.testing import CliRunner

from pgha.ci.harness import run_program
from pgha.cli import app
from pgha.drill.stack_config import set_stack_value
from pgha.local import free_port

PROJECT = Path(__file__).resolve().parent.parent
runner = CliRunner()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto server of our own, and boto3 pointed at it through AWS_ENDPOINT_URL."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    # moto keeps its accounts in the process: start every test from an empty one
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10).close()
    for key, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PGHA_DSN", raising=False)
    promotions_complete(monkeypatch)
    yield endpoint
    server.stop()


def promotions_complete(monkeypatch: pytest.MonkeyPatch) -> None:
    """Model what RDS does when a promotion completes, which moto does not (a moto quirk): moto's
    promote_read_replica never clears ReadReplicaSourceDBInstanceIdentifier, while real RDS clears it once the
    promoted instance is a standalone primary. The drill's "standalone primary" check requires no source, so
    the (in-process) moto backend clears it right after its promote call; tests of an instance that still lists
    its source override DescribeDBInstances instead."""
    from moto.rds.models import RDSBackend

    promote = RDSBackend.promote_read_replica

    def completes(self: RDSBackend, db_kwargs: dict) -> object:
        database = promote(self, db_kwargs)
        database.source_db_instance_identifier = None
        return database

    monkeypatch.setattr(RDSBackend, "promote_read_replica", completes)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project's Pulumi files: --update-config edits it, never the real stacks."""
    directory = tmp_path / "project"
    directory.mkdir()
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.prod.yaml"):
        shutil.copy(PROJECT / name, directory / name)
    for name in ("__main__.py", "components", "schema", "patroni"):  # so the program runs from here too
        (directory / name).symlink_to(PROJECT / name)
    return directory


def deploy(
    stack: str, *, multi_az: bool, replicas: int, dr_region: str | None, protected: bool, tag_stack: str | None = None
) -> dict[str, str]:
    """Create what `pulumi up` of the stack creates, as far as drills look: network, primary, replicas, DR."""
    prefix = f"pgha-{stack}"
    rds, ec2 = boto3.client("rds", region_name="eu-west-1"), boto3.client("ec2", region_name="eu-west-1")
    vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.40.{i}.0/24", AvailabilityZone=f"eu-west-1{zone}")["Subnet"][
            "SubnetId"
        ]
        for i, zone in enumerate("abc")
    ]
    group = ec2.create_security_group(GroupName=f"{prefix}-db", Description="db", VpcId=vpc)["GroupId"]
    rds.create_db_subnet_group(DBSubnetGroupName=f"{prefix}-net", DBSubnetGroupDescription="db", SubnetIds=subnets)
    tags = [{"Key": "pgha:project", "Value": "pgha"}, {"Key": "pgha:stack", "Value": tag_stack or stack}]
    primary = rds.create_db_instance(
        DBInstanceIdentifier=f"{prefix}-primary",
        Engine="postgres",
        EngineVersion="17",
        DBInstanceClass="db.r7g.large",
        AllocatedStorage=100,
        MasterUsername="pgha_admin",
        MasterUserPassword="not-used-here-1",
        MultiAZ=multi_az,
        DBSubnetGroupName=f"{prefix}-net",
        VpcSecurityGroupIds=[group],
        BackupRetentionPeriod=7,
        DeletionProtection=protected,
        Tags=tags,
    )["DBInstance"]
    for index in range(1, replicas + 1):
        rds.create_db_instance_read_replica(
            DBInstanceIdentifier=f"{prefix}-replica-{index}", SourceDBInstanceIdentifier=f"{prefix}-primary", Tags=tags
        )
    if dr_region:
        boto3.client("rds", region_name=dr_region).create_db_instance_read_replica(
            DBInstanceIdentifier=f"{prefix}-dr-replica",
            SourceDBInstanceIdentifier=primary["DBInstanceArn"],
            SourceRegion="eu-west-1",
            Tags=tags,
        )
    return {"subnet_group": f"{prefix}-net", "security_group": group}


def rds_metric(identifier: str, name: str, value: float, unit: str, region: str = "eu-west-1") -> None:
    """What RDS publishes for an instance: one value of one metric in CloudWatch, now."""
    boto3.client("cloudwatch", region_name=region).put_metric_data(
        Namespace="AWS/RDS",
        MetricData=[
            {
                "MetricName": name,
                "Value": value,
                "Unit": unit,
                "Timestamp": datetime.now(UTC).replace(microsecond=0),
                "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": identifier}],
            }
        ],
    )


def replica_lag(identifier: str, seconds: float, region: str = "eu-west-1") -> None:
    """A replica's ReplicaLag: on RDS, the time since the last commit it replayed."""
    rds_metric(identifier, "ReplicaLag", seconds, "Seconds", region)


def primary_writes(identifier: str, bytes_per_s: float) -> None:
    """A primary's TransactionLogsGeneration: the WAL it generates per second."""
    rds_metric(identifier, "TransactionLogsGeneration", bytes_per_s, "Bytes/Second")


def drill(project: Path, tmp_path: Path, *args: str):
    result = runner.invoke(
        app,
        [
            "drill",
            "rds",
            *args,
            "--project-dir",
            str(project),
            "--report",
            str(tmp_path / "reports"),
            "--poll-seconds",
            "0.1",
        ],
    )
    return result


def report_of(tmp_path: Path) -> dict:
    [path] = sorted((tmp_path / "reports").glob("*.json"))
    data = json.loads(path.read_text())
    assert path.with_suffix(".md").read_text().startswith(f"# Drill `{data['scenario']}`")
    png = path.with_suffix(".png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    return data


def instance(identifier: str, region: str = "eu-west-1") -> dict:
    rds = boto3.client("rds", region_name=region)
    return rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]


def test_failover_without_yes_on_a_protected_stack_only_prints_the_plan(
    aws: str, project: Path, tmp_path: Path
) -> None:
    deploy("prod", multi_az=True, replicas=2, dr_region="eu-central-1", protected=True)
    result = drill(project, tmp_path, "failover", "--stack", "prod")
    assert result.exit_code == 3, result.output
    assert "deletion protection" in result.output and "reboot pgha-prod-primary" in result.output
    assert not (tmp_path / "reports").exists()


def test_failover_with_a_heartbeat_through_the_writer_measures_rto_and_rpo(
    aws: str, project: Path, tmp_path: Path, postgres
) -> None:
    """The heartbeat goes to a real PostgreSQL standing in for the writer endpoint."""
    deploy("prod", multi_az=True, replicas=2, dr_region="eu-central-1", protected=True)
    result = drill(project, tmp_path, "failover", "--stack", "prod", "--yes", "--dsn", postgres.dsn())
    assert result.exit_code == 0, result.output
    data = report_of(tmp_path)
    assert data["target"] == "rds-prod" and data["scenario"] == "failover"
    assert data["verdict"] == {"passed": True, "reasons": []}
    assert data["targets"] == {"max_rto_s": 300.0, "max_rpo_s": 60.0, "max_lost_commits": 0}
    [rnd] = data["rounds"]
    assert rnd["rto_source"].startswith("heartbeat") and rnd["rto_s"] is not None
    assert rnd["lost_commits"] == [] and rnd["rpo_s"] == 0.0 and rnd["acknowledged_commits"] >= 3
    assert {"fault injected", "instance available", "heartbeat started"} <= {e["name"] for e in rnd["events"]}
    from pgha.connect import connect

    conn = connect(postgres.settings())
    assert conn.run("SELECT count(*) FROM pgha_drill_heartbeat")[0][0] == rnd["acknowledged_commits"]
    conn.close()
    assert postgres.password not in result.output


def test_failover_without_dsn_takes_rto_from_status_and_says_so(aws: str, project: Path, tmp_path: Path) -> None:
    deploy("prod", multi_az=True, replicas=2, dr_region="eu-central-1", protected=True)
    result = drill(project, tmp_path, "failover", "--stack", "prod", "--yes")
    assert result.exit_code == 0, result.output
    [rnd] = report_of(tmp_path)["rounds"]
    assert "not reachable" in rnd["rto_source"] and rnd["rpo_s"] is None and rnd["rpo_source"].startswith("not")


def test_failover_refuses_a_primary_without_multi_az(aws: str, project: Path, tmp_path: Path) -> None:
    deploy("dev", multi_az=False, replicas=1, dr_region=None, protected=False)
    result = drill(project, tmp_path, "failover", "--stack", "dev")
    assert result.exit_code == 2
    assert "pgha-dev-primary is not Multi-AZ" in result.output


def test_promote_replica_refuses_a_lagging_replica_and_a_missing_metric(
    aws: str, project: Path, tmp_path: Path
) -> None:
    deploy("dev", multi_az=False, replicas=1, dr_region=None, protected=False)
    missing = drill(project, tmp_path, "promote-replica", "--stack", "dev", "--replica", "1")
    assert missing.exit_code == 2 and "no ReplicaLag metric for pgha-dev-replica-1" in missing.output
    replica_lag("pgha-dev-replica-1", 5.0)
    lagging = drill(project, tmp_path, "promote-replica", "--stack", "dev", "--replica", "1")
    assert lagging.exit_code == 2
    assert "ReplicaLag is 5 s > --max-lag 1 s" in lagging.output
    assert not (tmp_path / "reports").exists()
    unknown = drill(project, tmp_path, "promote-replica", "--stack", "dev", "--replica", "4")
    assert unknown.exit_code == 2 and "declares 1 replica" in unknown.output


@pytest.mark.parametrize("wanted", ["\u0661", "\uff11", "\u00b9"])  # 1: Arabic-Indic, full-width, superscript
def test_promote_replica_takes_its_number_in_ascii_digits(aws: str, project: Path, tmp_path: Path, wanted: str) -> None:
    deploy("dev", multi_az=False, replicas=1, dr_region=None, protected=False)
    result = drill(project, tmp_path, "promote-replica", "--stack", "dev", "--replica", wanted)
    assert result.exit_code == 2, result.output
    assert "not one of this stack's replicas (pgha-dev-replica-N)" in result.output


@pytest.mark.parametrize(
    ("scenario", "stack", "replica", "region"),
    [
        ("promote-replica", "dev", "pgha-dev-replica-1", "eu-west-1"),
        ("promote-dr", "prod", "pgha-prod-dr-replica", "eu-central-1"),
    ],
)
def test_promote_a_caught_up_replica_of_an_idle_primary_despite_its_replica_lag(
    aws: str, project: Path, tmp_path: Path, scenario: str, stack: str, replica: str, region: str
) -> None:
    """A primary that commits nothing: RDS's ReplicaLag (now - the last replayed commit) grows on a replica that
    has replayed everything. The primary's own WAL rate says it is idle, so that is no lag (components/alarms.py)."""
    deploy(
        stack,
        multi_az=stack == "prod",
        replicas=1,
        dr_region="eu-central-1" if stack == "prod" else None,
        protected=stack == "prod",
    )
    replica_lag(replica, 240.0, region=region)
    primary_writes(f"pgha-{stack}-primary", 120.0)  # housekeeping only: far below a commit every fraction of a second
    result = drill(project, tmp_path, scenario, "--stack", stack, "--replica", "1", "--yes")
    assert result.exit_code == 0, result.output
    data = report_of(tmp_path)
    assert data["rounds"][0]["facts"]["promoted"] == replica
    notes = "\n".join(data["notes"])
    assert f"{replica} ReplicaLag is 240 s > --max-lag 1 s, but pgha-{stack}-primary was idle" in notes


def test_promote_replica_refuses_a_replica_lagging_while_the_primary_writes(
    aws: str, project: Path, tmp_path: Path
) -> None:
    deploy("dev", multi_az=False, replicas=1, dr_region=None, protected=False)
    replica_lag("pgha-dev-replica-1", 5.0)
    primary_writes("pgha-dev-primary", 250_000.0)
    result = drill(project, tmp_path, "promote-replica", "--stack", "dev", "--replica", "1")
    assert result.exit_code == 2
    assert (
        "pgha-dev-replica-1 ReplicaLag is 5 s > --max-lag 1 s while pgha-dev-primary wrote 250000 B/s of WAL: "
        "refusing to promote a lagging replica"
    ) in result.output
    assert not (tmp_path / "reports").exists(), "refused before anything changed"


def test_promote_replica_refuses_a_replica_whose_replication_broke(
    aws: str, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Broken replication on an idle primary also shows as a growing ReplicaLag; an idle primary must not let it
    through: RDS's replication state of the replica says it."""
    from pgha.drill.rds import RdsDrill

    deploy("dev", multi_az=False, replicas=1, dr_region=None, protected=False)
    replica_lag("pgha-dev-replica-1", 600.0)
    primary_writes("pgha-dev-primary", 0.0)
    describe = RdsDrill.describe

    def broken(self: RdsDrill, identifier: str, region: str | None = None) -> dict:
        found = describe(self, identifier, region)
        if identifier == "pgha-dev-replica-1":  # what DescribeDBInstances says of a replica whose replication failed
            found["StatusInfos"] = [
                {
                    "StatusType": "read replication",
                    "Normal": False,
                    "Status": "error",
                    "Message": "Replication has stopped.",
                }
            ]
        return found

    monkeypatch.setattr(RdsDrill, "describe", broken)
    result = drill(project, tmp_path, "promote-replica", "--stack", "dev", "--replica", "1")
    assert result.exit_code == 2
    assert "pgha-dev-replica-1 read replication is error (Replication has stopped.)" in result.output


def test_promote_replica_within_max_lag_promotes_and_keeps_the_config(aws: str, project: Path, tmp_path: Path) -> None:
    deploy("dev", multi_az=False, replicas=1, dr_region=None, protected=False)
    replica_lag("pgha-dev-replica-1", 5.0)
    before = (project / "Pulumi.dev.yaml").read_text()
    result = drill(
        project, tmp_path, "promote-replica", "--stack", "dev", "--replica", "1", "--max-lag", "10", "--update-config"
    )
    assert result.exit_code == 0, result.output
    assert "keep pgha:replicas = 1" in result.output
    urn = run_program("dev", project_dir=project).get("pgha-dev-replica-1").urn
    assert f"pulumi refresh --stack dev --target '{urn}' --yes" in result.output
    assert "pulumi up --stack dev: creates pgha-dev-replica-1 again" in result.output
    assert (project / "Pulumi.dev.yaml").read_text() == before
    data = report_of(tmp_path)
    assert data["rounds"][0]["facts"]["promoted"] == "pgha-dev-replica-1"
    assert instance("pgha-dev-replica-1")["BackupRetentionPeriod"] == 1  # the stack's backupRetentionDays


def test_promote_with_dsn_to_an_unreachable_endpoint_says_so_and_keeps_the_heartbeats(
    aws: str, project: Path, tmp_path: Path, postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--dsn reaches the primary (a real PostgreSQL stands in for it) but the promoted instance's endpoint never
    answers from here: the report must say that, not "no --dsn", and keep what the heartbeat acknowledged."""
    import pgha.drill.rds

    monkeypatch.setattr(pgha.drill.rds, "PROMOTED_CONNECT_S", 1.0)
    deploy("dev", multi_az=False, replicas=1, dr_region=None, protected=False)
    replica_lag("pgha-dev-replica-1", 0.2)
    result = drill(project, tmp_path, "promote-replica", "--stack", "dev", "--replica", "1", "--dsn", postgres.dsn())
    assert result.exit_code == 1, result.output
    data = report_of(tmp_path)
    [rnd] = data["rounds"]
    endpoint = rnd["facts"]["endpoint"]
    assert "no --dsn" not in rnd["rto_source"] + rnd["rpo_source"]
    assert (
        f"--dsn was given, but the promoted endpoint {endpoint} did not accept a write from here" in rnd["rto_source"]
    )
    assert rnd["acknowledged_commits"] >= 2, "the heartbeats acknowledged before the promotion are kept"
    from pgha.connect import connect

    conn = connect(postgres.settings())
    newest_on_primary = conn.run("SELECT max(id) FROM pgha_drill_heartbeat")[0][0]
    conn.close()
    newest = rnd["facts"]["newest_acknowledged_heartbeat"]
    assert newest["id"] == newest_on_primary, "what the promoted instance should hold, to check there later"
    assert rnd["rpo_s"] is None and f"the newest (id {newest['id']})" in rnd["rpo_source"]
    assert "round 1: check failed: the promoted endpoint accepted a write through --dsn" in "\n".join(
        data["verdict"]["reasons"]
    )


def test_promote_dr_with_update_config_edits_only_that_key(aws: str, project: Path, tmp_path: Path) -> None:
    deploy("prod", multi_az=True, replicas=2, dr_region="eu-central-1", protected=True)
    replica_lag("pgha-prod-dr-replica", 0.3, region="eu-central-1")
    before = (project / "Pulumi.prod.yaml").read_text()
    result = drill(project, tmp_path, "promote-dr", "--stack", "prod", "--yes", "--update-config")
    assert result.exit_code == 0, result.output
    assert "pulumi config set --stack prod pgha:drPromoted true" in result.output
    after = (project / "Pulumi.prod.yaml").read_text()
    assert after.splitlines()[: len(before.splitlines())] == before.splitlines(), "comments and keys kept"
    assert after.splitlines()[len(before.splitlines()) :] == ["  pgha:drPromoted: true"]
    data = report_of(tmp_path)
    assert data["settings"]["stack_config_change"].startswith("pgha:drPromoted: true")
    assert data["rounds"][0]["facts"]["region"] == "eu-central-1"
    # backups from the promotion on, in the window the program declares (the refresh then finds them set)
    promoted = instance("pgha-prod-dr-replica", "eu-central-1")
    assert promoted["BackupRetentionPeriod"] == 14 and promoted["PreferredBackupWindow"] == "02:00-03:00"
    # what `pgha plan --stack prod` now shows: the DR instance declared as the standalone primary it is
    plan = run_program("prod", project_dir=project)
    assert "replicateSourceDb" not in plan.get("pgha-prod-dr-replica").inputs
    assert plan.outputs["drWriterEndpoint"].startswith("pgha-prod-dr-replica.")


def test_restore_pitr_into_the_stacks_network_then_deletes_it(aws: str, project: Path, tmp_path: Path) -> None:
    network = deploy("dev", multi_az=False, replicas=1, dr_region=None, protected=False)
    when = (datetime.now(UTC) - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = drill(project, tmp_path, "restore-pitr", "--stack", "dev", "--to", when)
    assert result.exit_code == 0, result.output
    [rnd] = report_of(tmp_path)["rounds"]
    assert rnd["facts"]["subnet_group"] == network["subnet_group"]
    assert rnd["facts"]["security_groups"] == [network["security_group"]]
    assert {c["name"]: c["ok"] for c in rnd["checks"]}["scratch instance deleted"] is True
    names = [
        i["DBInstanceIdentifier"]
        for i in boto3.client("rds", region_name="eu-west-1").describe_db_instances()["DBInstances"]
    ]
    assert not [n for n in names if "-pitr-" in n]


def test_restore_pitr_keep_leaves_the_scratch_instance(aws: str, project: Path, tmp_path: Path) -> None:
    deploy("dev", multi_az=False, replicas=0, dr_region=None, protected=False)
    result = drill(project, tmp_path, "restore-pitr", "--stack", "dev", "--to", "latest", "--keep")
    assert result.exit_code == 0, result.output
    scratch = report_of(tmp_path)["rounds"][0]["facts"]["scratch"]
    assert instance(scratch)["DBInstanceStatus"] == "available"


@pytest.mark.parametrize(
    ("to", "message"),
    [
        ("yesterday", "not an ISO 8601 time"),
        ("2020-01-01T00:00:00", "give a time zone"),
        ("2020-01-01T00:00:00Z", "before the backup retention window"),
    ],
)
def test_restore_pitr_refuses_a_bad_time(aws: str, project: Path, tmp_path: Path, to: str, message: str) -> None:
    deploy("dev", multi_az=False, replicas=0, dr_region=None, protected=False)
    result = drill(project, tmp_path, "restore-pitr", "--stack", "dev", "--to", to)
    assert result.exit_code == 2 and message in result.output


def test_missing_instance_wrong_stack_and_unknown_scenario_are_one_line_exit_2(
    aws: str, project: Path, tmp_path: Path
) -> None:
    missing = drill(project, tmp_path, "failover", "--stack", "dev")
    assert missing.exit_code == 2 and "no RDS instance pgha-dev-primary in eu-west-1" in missing.output
    assert len(missing.output.strip().splitlines()) == 1
    deploy("dev", multi_az=True, replicas=0, dr_region=None, protected=False, tag_stack="staging")
    wrong = drill(project, tmp_path, "failover", "--stack", "dev")
    assert wrong.exit_code == 2 and "tagged pgha:stack=staging, not dev: wrong stack" in wrong.output
    unknown = drill(project, tmp_path, "explode", "--stack", "dev")
    assert unknown.exit_code == 2 and "unknown RDS scenario 'explode'" in unknown.output
    no_dr = drill(project, tmp_path, "promote-dr", "--stack", "dev")
    assert no_dr.exit_code == 2 and "pgha:drRegion is not set" in no_dr.output


def test_set_stack_value_keeps_comments_and_other_keys(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.x.yaml"
    text = (
        "# header comment\nconfig:\n  aws:region: eu-west-1  # where\n  pgha:replicas: 2 # two\n"
        "  pgha:allowedCidrs:\n    - 10.40.0.0/16\n  # trailing comment\nother: 1\n"
    )
    path.write_text(text)
    assert set_stack_value(path, "pgha:replicas", "1") == "2"
    assert path.read_text() == text.replace("pgha:replicas: 2 # two", "pgha:replicas: 1 # two")
    assert set_stack_value(path, "pgha:drPromoted", "true") is None
    assert path.read_text().splitlines()[6] == "  pgha:drPromoted: true"
    assert path.read_text().replace("  pgha:drPromoted: true\n", "") == text.replace("2 # two", "1 # two")


def test_promoted_endpoint_rpo_is_the_newest_heartbeat_there_vs_the_newest_acknowledged(postgres) -> None:
    """The comparison after a promotion, against a real PostgreSQL standing in for the promoted instance: it
    holds heartbeats 1-5 of the 7 the writer acknowledged (the replica was 2 s behind)."""
    from pgha.connect import connect
    from pgha.drill.engine import Round
    from pgha.drill.probe import Commit, ProbeReport
    from pgha.drill.rds import HEARTBEAT_TABLE, RdsDrill, RdsOptions, load_stack

    conn = connect(postgres.settings())
    conn.run(f"CREATE TABLE IF NOT EXISTS {HEARTBEAT_TABLE} (id bigint PRIMARY KEY, at timestamptz DEFAULT now())")
    conn.run(f"TRUNCATE {HEARTBEAT_TABLE}")
    conn.run(f"INSERT INTO {HEARTBEAT_TABLE} (id) SELECT generate_series(1, 5)")
    conn.close()
    start = 1_800_000_000.0
    report = ProbeReport(commits=[Commit(i, start + i, "writer") for i in range(1, 8)])
    drill = RdsDrill(load_stack("dev", PROJECT), "promote-replica", RdsOptions(settings=postgres.settings()))
    rnd = Round(1)
    promoted = {"Endpoint": {"Address": "127.0.0.1", "Port": postgres.port}}
    assert drill._promoted_accepts_writes(rnd, promoted, start + 7.5, report)
    assert rnd.lost == [6, 7] and rnd.rpo_s == 2.0
    assert rnd.rto_source.startswith("from the API call until the promoted endpoint accepted")
    assert "writes accepted by the promoted instance" in {e.name for e in rnd.events}


@pytest.mark.parametrize("last_write_failed", [True, False])
def test_failover_heartbeat_not_acknowledged_after_the_call_has_no_rto(last_write_failed: bool) -> None:
    """Heartbeats once a second until just before the reboot, none after it until the heartbeat stopped 300 s
    later: not a 1 s RTO (the gap between two heartbeats before the call), nor a finite one that passes."""
    from pgha.drill.engine import DrillResult, Round, Targets
    from pgha.drill.probe import Commit, ProbeReport
    from pgha.drill.rds import RdsDrill, RdsOptions, load_stack

    start = 1_800_000_000.0
    report = ProbeReport(
        commits=[Commit(i, start + i, "writer") for i in range(1, 11)],
        started=start,
        stopped=start + 310.0,
        failing_since=start + 11.0 if last_write_failed else None,
    )
    drill = RdsDrill(load_stack("prod", PROJECT), "failover", RdsOptions())
    rnd = Round(1)
    rnd.measure_probe(report, [], source="heartbeat through --dsn", noise_s=2.0)
    drill._rto_from_call(rnd, report, called=start + 10.5)
    assert rnd.rto_s is None
    assert rnd.not_recovered_s == 300.0 and rnd.rto_window == (start + 10, start + 310)
    passed, reasons = DrillResult("rds-prod", "failover", Targets(), rounds=[rnd]).verdict()
    assert not passed and reasons[0].startswith("round 1: writes not back when the measurement ended")


@pytest.mark.parametrize("command", [["lab", "switchover"], ["rds", "failover", "--stack", "dev"]])
@pytest.mark.parametrize(
    ("option", "value", "problem"),
    [
        ("--max-rto", "nan", "nan is not a finite number"),
        ("--max-rpo", "nan", "nan is not a finite number"),
        ("--max-rto", "inf", "inf is not a finite number"),
        ("--max-rto", "-1", "-1.0 is negative: a target is 0 or more"),
        ("--max-rpo", "-0.5", "-0.5 is negative"),
        ("--max-lost", "-1", "-1 is negative"),
    ],
)
def test_a_non_finite_or_negative_drill_target_is_refused_before_anything_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, command: list[str], option: str, value: str, problem: str
) -> None:
    """--max-rto nan passed every round (rto > nan is False) and wrote NaN, which is not JSON, into the report;
    a negative target failed every round. Refused while the options are parsed: no lab or AWS call is made."""

    def touched(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the drill started")

    monkeypatch.setattr("pgha.drill.cli.open_lab", touched)
    monkeypatch.setattr("pgha.drill.cli._progress", touched)
    result = runner.invoke(app, ["drill", *command, option, value, "--report", str(tmp_path / "reports")])
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.output and problem in result.output
    assert not (tmp_path / "reports").exists()


@pytest.mark.parametrize("command", [["lab", "switchover"], ["rds", "failover", "--stack", "dev"]])
def test_a_report_directory_that_cannot_be_written_is_refused_before_anything_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, command: list[str]
) -> None:
    """--report /dev/null/x ran the whole drill, then crashed with NotADirectoryError: RTO and verdict lost."""

    def touched(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the drill started")

    monkeypatch.setattr("pgha.drill.cli.open_lab", touched)
    monkeypatch.setattr("pgha.drill.cli._progress", touched)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for report, problem in (
        (blocker / "reports", f"cannot be created: {blocker} is not a directory"),
        (blocker, "is not a directory"),
    ):
        result = runner.invoke(app, ["drill", *command, "--report", str(report)])
        assert result.exit_code == 2, result.output
        assert f"--report {report} {problem}; nothing was started" in result.output


def test_reports_that_fail_to_write_after_the_drill_still_print_rto_and_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The directory checked before the drill can still fail at the end (removed, disk full): the measurements
    and the verdict are printed, and the run fails naming the directory, without a traceback."""
    import typer

    from pgha.drill.cli import _finish_drill
    from pgha.drill.engine import DrillResult, Round, Targets

    rnd = Round(1)
    rnd.rto_s, rnd.rpo_s = 4.25, 0.0
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(typer.Exit) as ended:
        _finish_drill(DrillResult("lab", "switchover", Targets(), rounds=[rnd]), blocker / "reports")
    out, err = capsys.readouterr()
    assert ended.value.exit_code == 1
    assert "round 1: RTO 4.25 s, RPO 0.00 s, 0 acknowledged commits lost" in out and "drill passed" in out
    assert f"the reports were not written into {blocker / 'reports'}: " in err


# --- promotions: one-way, from the moment PromoteReadReplica returned ---------------------------------------


def throttle_after_promote(monkeypatch: pytest.MonkeyPatch) -> None:
    """PromoteReadReplica goes through, then every DescribeDBInstances is throttled: the round aborts after the
    one-way call."""
    from botocore.exceptions import ClientError

    from pgha.drill.rds import RdsDrill

    client, describe, state = RdsDrill.client, RdsDrill.describe, {"promoted": False}

    def counting(self: RdsDrill, service: str, region: str | None = None) -> object:
        made = client(self, service, region)
        if service == "rds":
            promote = made.promote_read_replica

            def promoted(**kwargs: object) -> object:
                answer = promote(**kwargs)
                state["promoted"] = True
                return answer

            made.promote_read_replica = promoted
        return made

    def throttled(self: RdsDrill, identifier: str, region: str | None = None) -> dict:
        if state["promoted"]:
            raise ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "DescribeDBInstances")
        return describe(self, identifier, region)

    monkeypatch.setattr(RdsDrill, "client", counting)
    monkeypatch.setattr(RdsDrill, "describe", throttled)


def test_promote_dr_aborted_after_the_call_still_gives_and_writes_the_config_change(
    aws: str, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The promotion happened even though the round aborted: the config step is printed and written, and the
    report says the DR replica was promoted, not that everything was put back."""
    deploy("prod", multi_az=True, replicas=2, dr_region="eu-central-1", protected=True)
    replica_lag("pgha-prod-dr-replica", 0.3, region="eu-central-1")
    throttle_after_promote(monkeypatch)
    result = drill(project, tmp_path, "promote-dr", "--stack", "prod", "--yes", "--update-config")
    assert result.exit_code == 1, result.output
    assert "pulumi config set --stack prod pgha:drPromoted true" in result.output
    assert "pgha:drPromoted: true" in (project / "Pulumi.prod.yaml").read_text()
    data = report_of(tmp_path)
    assert "Throttling" in data["rounds"][0]["error"]
    assert data["rounds"][0]["facts"]["promoted"] == "pgha-prod-dr-replica"
    assert data["restored"] is False
    [left] = data["left_changed"]
    assert left.startswith("pgha-prod-dr-replica (eu-central-1) was promoted to a standalone primary - one-way")
    assert "left changed (not put back, by design): pgha-prod-dr-replica" in result.output


def test_promote_replica_aborted_after_the_call_still_prints_the_advice(
    aws: str, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy("dev", multi_az=False, replicas=1, dr_region=None, protected=False)
    replica_lag("pgha-dev-replica-1", 0.2)
    throttle_after_promote(monkeypatch)
    result = drill(project, tmp_path, "promote-replica", "--stack", "dev", "--replica", "1")
    assert result.exit_code == 1, result.output
    assert "keep pgha:replicas = 1" in result.output and "pulumi refresh --stack dev" in result.output
    assert report_of(tmp_path)["left_changed"][0].startswith("pgha-dev-replica-1 (eu-west-1) was promoted")


def test_a_promoted_instance_still_listing_its_source_fails_the_standalone_check(
    aws: str, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Available but still a replica (the promotion did not complete, or was a no-op): not a standalone primary."""
    from pgha.drill.rds import RdsDrill

    deploy("dev", multi_az=False, replicas=1, dr_region=None, protected=False)
    replica_lag("pgha-dev-replica-1", 0.2)
    describe = RdsDrill.describe

    def still_replica(self: RdsDrill, identifier: str, region: str | None = None) -> dict:
        found = describe(self, identifier, region)
        if identifier == "pgha-dev-replica-1":
            found["ReadReplicaSourceDBInstanceIdentifier"] = "pgha-dev-primary"
        return found

    monkeypatch.setattr(RdsDrill, "describe", still_replica)
    result = drill(project, tmp_path, "promote-replica", "--stack", "dev", "--replica", "1")
    assert result.exit_code == 1, result.output
    checks = {c["name"]: c for c in report_of(tmp_path)["rounds"][0]["checks"]}
    standalone = checks["pgha-dev-replica-1 available as a standalone primary"]
    assert standalone["ok"] is False
    assert standalone["detail"] == "still lists pgha-dev-primary as its replication source"


def test_a_completed_promotion_is_reported_as_left_changed_never_as_all_put_back(
    aws: str, project: Path, tmp_path: Path
) -> None:
    deploy("prod", multi_az=True, replicas=1, dr_region="eu-central-1", protected=True)
    replica_lag("pgha-prod-dr-replica", 0.3, region="eu-central-1")
    result = drill(project, tmp_path, "promote-dr", "--stack", "prod", "--yes")
    assert result.exit_code == 0, result.output
    assert "then pulumi up --refresh --stack prod" in result.output
    data = report_of(tmp_path)
    assert data["verdict"]["passed"] is True and data["unrestored"] == []
    assert data["restored"] is False and len(data["left_changed"]) == 1
    assert "pulumi up --refresh --stack prod" in data["left_changed"][0]
    [markdown] = (tmp_path / "reports").glob("*.md")
    text = markdown.read_text()
    assert "everything the drill changed was put back" not in text
    assert "- **left changed** (not put back, by design): pgha-prod-dr-replica (eu-central-1) was promoted" in text


def test_the_docs_tell_pulumi_up_with_refresh_after_a_dr_promotion() -> None:
    """After promote-dr Pulumi's state still has replicate_source_db; a plain `pulumi up` asks the provider to
    promote an instance that is already standalone. Every place that gives the step says --refresh."""
    readme = (PROJECT / "README.md").read_text()
    drills = (PROJECT / "docs" / "drills.md").read_text()
    assert "pulumi config set pgha:drPromoted true && pulumi up --refresh" in readme
    assert "pulumi config set pgha:drPromoted true && pulumi up\n" not in readme
    assert "then `pgha plan`, `pulumi up --refresh`" in drills


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_replica_rollback_advice_names_the_stacks_urn_and_covers_its_dependents(stack: str) -> None:
    """The advice works with Pulumi's rules: no `pulumi state delete` (refused for a resource others depend on,
    and for a protected one); the URN refreshed is the plan's, its dependents are named as staying, and a
    protected replica is unprotected first."""
    from pgha.drill.rds import replica_rollback_advice

    plan = run_program(stack)
    replica = plan.get(f"pgha-{stack}-replica-1")
    dependents = [r for r in plan.resources if replica.urn in r.dependencies]
    assert len(dependents) >= 6, "5 alarms and the event subscription"
    advice = "\n".join(replica_rollback_advice(plan, stack, replica.name, f"pgha-{stack}-primary", 1, "eu-west-1"))
    assert f"pulumi refresh --stack {stack} --target '{replica.urn}' --yes" in advice
    assert all(r.name in advice for r in dependents)
    assert (f"pulumi state unprotect --stack {stack} '{replica.urn}'" in advice) is replica.protect
    assert stack == "dev" or replica.protect, "prod protects its replicas"
    assert "pulumi state delete --" not in advice and "pulumi state delete '" not in advice
    urns = {r.urn for r in plan.resources}
    assert all(urn in urns for urn in re.findall(r"'(urn:pulumi:[^']+)'", advice))


# --- waiting, guards, restores ------------------------------------------------------------------------------


def fail_restore(monkeypatch: pytest.MonkeyPatch, status: str = "incompatible-restore") -> None:
    """The scratch instance of a restore lands in a state RDS never leaves for available by itself."""
    from pgha.drill.rds import RdsDrill

    describe = RdsDrill.describe

    def failed(self: RdsDrill, identifier: str, region: str | None = None) -> dict:
        found = describe(self, identifier, region)
        if "-pitr-" in identifier:
            found["DBInstanceStatus"] = status
        return found

    monkeypatch.setattr(RdsDrill, "describe", failed)


def test_a_terminal_status_stops_the_wait_naming_it(
    aws: str, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    deploy("dev", multi_az=False, replicas=0, dr_region=None, protected=False)
    fail_restore(monkeypatch)
    started = time.monotonic()
    result = drill(project, tmp_path, "restore-pitr", "--stack", "dev", "--to", "latest")
    assert time.monotonic() - started < 60, "waited on a terminal state"
    assert result.exit_code == 1, result.output
    data = report_of(tmp_path)
    assert "is 'incompatible-restore': RDS does not make it available" in data["rounds"][0]["error"]
    assert data["unrestored"] == [], "the scratch instance was deleted"


def test_keep_with_an_aborted_restore_lists_the_scratch_instance_with_its_delete_command(
    aws: str, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy("dev", multi_az=False, replicas=0, dr_region=None, protected=False)
    fail_restore(monkeypatch)
    result = drill(project, tmp_path, "restore-pitr", "--stack", "dev", "--to", "latest", "--keep")
    assert result.exit_code == 1, result.output
    [left] = report_of(tmp_path)["unrestored"]
    scratch = re.search(r"scratch instance (pgha-dev-pitr-\d+) ", left).group(1)
    assert (
        f"delete it with aws rds delete-db-instance --region eu-west-1 --db-instance-identifier {scratch} "
        "--skip-final-snapshot" in left
    )
    assert instance(scratch)


def test_restore_pitr_is_judged_against_its_own_default_rto_target(aws: str, project: Path, tmp_path: Path) -> None:
    """A restore's RTO is the whole restore (10-30 min on RDS): the failover KPI of 300 s would fail every one."""
    deploy("dev", multi_az=False, replicas=0, dr_region=None, protected=False)
    result = drill(project, tmp_path, "restore-pitr", "--stack", "dev", "--to", "latest", "--keep")
    assert result.exit_code == 0, result.output
    data = report_of(tmp_path)
    assert data["targets"]["max_rto_s"] == 3600.0
    [left] = data["left_changed"]
    assert left.startswith("scratch instance pgha-dev-pitr-") and "(--keep)" in left
    shutil.rmtree(tmp_path / "reports")
    boto3.client("rds", region_name="eu-west-1").delete_db_instance(  # as the user would, with the printed command
        DBInstanceIdentifier=left.split()[2], SkipFinalSnapshot=True
    )
    explicit = drill(project, tmp_path, "restore-pitr", "--stack", "dev", "--to", "latest", "--max-rto", "900")
    assert explicit.exit_code == 0 and report_of(tmp_path)["targets"]["max_rto_s"] == 900.0


@pytest.mark.parametrize(
    "pending",
    [
        {"DBParameterGroups": [{"DBParameterGroupName": "pgha-prod-pg17", "ParameterApplyStatus": "pending-reboot"}]},
        {"PendingModifiedValues": {"DBInstanceClass": "db.r7g.xlarge"}},
    ],
)
def test_failover_refuses_while_changes_wait_for_a_reboot(
    aws: str, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pending: dict
) -> None:
    from pgha.drill.rds import RdsDrill

    deploy("prod", multi_az=True, replicas=0, dr_region=None, protected=True)
    describe = RdsDrill.describe
    monkeypatch.setattr(
        RdsDrill,
        "describe",
        lambda self, identifier, region=None: {
            **describe(self, identifier, region),
            **(pending if identifier == "pgha-prod-primary" else {}),
        },
    )
    refused = drill(project, tmp_path, "failover", "--stack", "prod", "--yes")
    assert refused.exit_code == 2, refused.output
    assert "the failover's reboot would apply them; refusing" in refused.output
    assert not (tmp_path / "reports").exists()
    allowed = drill(project, tmp_path, "failover", "--stack", "prod", "--yes", "--allow-pending-reboot")
    assert allowed.exit_code == 0, allowed.output


def test_a_dsn_that_cannot_write_the_heartbeat_is_refused_before_anything_changes(
    aws: str, project: Path, tmp_path: Path, postgres
) -> None:
    deploy("dev", multi_az=False, replicas=1, dr_region=None, protected=False)
    replica_lag("pgha-dev-replica-1", 0.2)
    dsn = postgres.dsn().replace(postgres.password, "not-the-password")
    result = drill(project, tmp_path, "promote-replica", "--stack", "dev", "--replica", "1", "--dsn", dsn)
    assert result.exit_code == 2, result.output
    assert "the heartbeat table pgha_drill_heartbeat could not be prepared" in result.output
    assert "nothing was changed" in result.output and "not-the-password" not in result.output
    assert not (tmp_path / "reports").exists()
    assert instance("pgha-dev-replica-1")["ReadReplicaSourceDBInstanceIdentifier"] == "pgha-dev-primary"


def test_a_dsn_without_create_privilege_is_refused_before_anything_changes(
    aws: str, project: Path, tmp_path: Path, postgres
) -> None:
    """A login that may connect but not create the heartbeat table (no CREATE on schema public, the default for
    a non-owner since PostgreSQL 15; revoked here so it holds on any version): exit 2, not an aborted round."""
    from pgha.connect import connect

    admin = connect(postgres.settings())
    admin.run("DROP ROLE IF EXISTS pgha_drill_nocreate")
    admin.run("CREATE ROLE pgha_drill_nocreate LOGIN PASSWORD 'no-create-1'")
    admin.run("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    try:
        deploy("prod", multi_az=True, replicas=0, dr_region=None, protected=True)
        dsn = f"postgresql://pgha_drill_nocreate:no-create-1@127.0.0.1:{postgres.port}/app"
        result = drill(project, tmp_path, "failover", "--stack", "prod", "--yes", "--dsn", dsn)
        assert result.exit_code == 2, result.output
        assert "could not be prepared" in result.output and "permission denied" in result.output
        assert not (tmp_path / "reports").exists()
    finally:
        admin.run("DROP ROLE pgha_drill_nocreate")
        admin.close()


def test_an_aborted_restore_never_deletes_an_instance_it_did_not_create(
    aws: str, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scratch identifier is stamped to the second: a run in the same second as a --keep one finds that
    instance there, its restore call fails, and what it puts back must not include deleting the kept one."""
    from pgha.drill import rds

    deploy("dev", multi_az=False, replicas=0, dr_region=None, protected=False)
    kept = drill(project, tmp_path, "restore-pitr", "--stack", "dev", "--to", "latest", "--keep")
    assert kept.exit_code == 0, kept.output
    scratch = report_of(tmp_path)["rounds"][0]["facts"]["scratch"]
    # the second run picks the same identifier, as it would within the same second
    monkeypatch.setattr(
        rds.RdsDrill,
        "_restore_guard",
        lambda self, primary: (
            setattr(self, "restore_time", None),
            setattr(self, "scratch_id", scratch),
            setattr(self, "primary", primary),
        ),
    )
    shutil.rmtree(tmp_path / "reports")
    again = drill(project, tmp_path, "restore-pitr", "--stack", "dev", "--to", "latest")
    assert again.exit_code == 1, again.output
    assert report_of(tmp_path)["unrestored"] == []
    assert instance(scratch)["DBInstanceStatus"] == "available", "the kept instance is still there"
