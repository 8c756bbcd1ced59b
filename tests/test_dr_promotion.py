"""``pgha:drPromoted``: after a DR promotion the program declares a primary in the DR region, in place.

What the update may change, and in which order the provider applies it (terraform-provider-aws
internal/service/rds/instance.go, resourceInstanceUpdate @1a5174b137): PromoteReadReplica with the
declared backupRetentionPeriod and backupWindow, a wait until the instance is available, then one
ModifyDBInstance with the rest (the managed master secret with the DR region's key).
"""

from __future__ import annotations

import pytest

from pgha.ci.harness import Plan, RegisteredResource, Secret, redact, run_program
from pgha.ci.policy import evaluate_plan
from pgha.ci.stateful import force_new_inputs

DR = "pgha-prod-dr-replica"
#: Sent with PromoteReadReplica itself: automated backups start with the promotion.
PROMOTE_READ_REPLICA = {"replicateSourceDb", "backupRetentionPeriod", "backupWindow"}
#: Sent in the ModifyDBInstance after it: a master secret of the DR region's own.
MODIFY_AFTER = {"manageMasterUserPassword", "masterUserSecretKmsKeyId"}
#: Read by the provider only when the instance is deleted (no API call on update).
ON_DELETE = {"skipFinalSnapshot", "finalSnapshotIdentifier", "deleteAutomatedBackups"}
PROMOTION_INPUTS = PROMOTE_READ_REPLICA | MODIFY_AFTER | ON_DELETE
#: The top-level inputs that force a new aws_db_instance, from the one table pgha diff uses.
FORCE_NEW = {f.path.split(".")[0] for f in force_new_inputs("aws:rds/instance:Instance")}


@pytest.fixture(scope="module")
def promoted() -> Plan:
    return run_program("prod", {"drPromoted": "true"})


def by_urn(plan: Plan) -> dict[str, RegisteredResource]:
    return {r.urn: r for r in plan.resources}


def changed_inputs(before: RegisteredResource, after: RegisteredResource) -> set[str]:
    """Input names whose values differ (assets compared by what they contain, secrets by value)."""
    old, new = redact(before.inputs), redact(after.inputs)
    secrets = {
        k
        for k in set(before.inputs) | set(after.inputs)
        if isinstance(before.inputs.get(k), Secret) or isinstance(after.inputs.get(k), Secret)
    }
    return {
        k
        for k in set(old) | set(new)
        if old.get(k) != new.get(k) or (k in secrets and before.inputs.get(k) != after.inputs.get(k))
    }


def test_promoted_dr_instance_is_the_same_resource_updated_in_place(prod_plan: Plan, promoted: Plan) -> None:
    before, after = prod_plan.get(DR), promoted.get(DR)
    assert after.urn == before.urn and after.type == before.type
    changed = changed_inputs(before, after)
    assert "replicateSourceDb" in changed and "replicateSourceDb" not in after.inputs
    assert changed <= PROMOTION_INPUTS, f"more than the promotion in one update: {changed - PROMOTION_INPUTS}"
    assert not changed & FORCE_NEW
    for key in FORCE_NEW:
        assert before.inputs.get(key) == after.inputs.get(key), key


def test_the_replica_has_no_automated_backups_and_the_promoted_instance_has_the_primarys(
    prod_plan: Plan, promoted: Plan
) -> None:
    """A replica in ``backing-up`` cannot be promoted (PromoteReadReplica): the DR replica takes no backups of
    its own; the promotion starts them, with the primary's retention and window."""
    replica, primary = prod_plan.get(DR).inputs, prod_plan.get("pgha-prod-primary").inputs
    assert replica["backupRetentionPeriod"] == 0 and "backupWindow" not in replica
    dr = promoted.get(DR).inputs
    assert dr["backupRetentionPeriod"] == primary["backupRetentionPeriod"] == 14
    assert dr["backupWindow"] == primary["backupWindow"] == "02:00-03:00"


def test_promoted_dr_instance_has_a_master_secret_in_its_own_region(prod_plan: Plan, promoted: Plan) -> None:
    replica, dr = prod_plan.get(DR).inputs, promoted.get(DR).inputs
    assert "manageMasterUserPassword" not in replica  # RDS refuses it on a read replica
    dr_key = promoted.get("pgha-prod-dr-key")
    assert dr["manageMasterUserPassword"] is True and dr["masterUserSecretKmsKeyId"] == dr["kmsKeyId"]
    assert dr_key.urn in promoted.get(DR).property_dependencies["masterUserSecretKmsKeyId"]
    secret = promoted.outputs["drMasterSecretArn"]
    assert secret.split(":")[3] == "eu-central-1" and "drMasterSecretArn" not in prod_plan.outputs


def test_promoted_dr_instance_is_protected_with_a_final_snapshot_of_its_own(promoted: Plan) -> None:
    dr = promoted.get(DR).inputs
    assert dr["skipFinalSnapshot"] is False and dr["finalSnapshotIdentifier"].startswith(f"{DR}-final-")
    assert dr["finalSnapshotIdentifier"] != promoted.get("pgha-prod-primary").inputs["finalSnapshotIdentifier"]
    assert dr["deleteAutomatedBackups"] is False
    assert dr["deletionProtection"] is True and promoted.get(DR).protect


def test_promotion_changes_nothing_else(prod_plan: Plan, promoted: Plan) -> None:
    before, after = by_urn(prod_plan), by_urn(promoted)
    added = {after[urn].name for urn in set(after) - set(before)}
    assert added == {f"{DR}-final-snapshot-suffix"} and set(before) <= set(after), "resources added or removed"
    for urn, resource in before.items():
        if resource.name == DR:
            continue
        assert changed_inputs(resource, after[urn]) == set(), resource.name
        assert resource.dependencies == after[urn].dependencies, resource.name
        assert resource.protect == after[urn].protect, resource.name


def test_promoted_dr_instance_is_the_dr_regions_writer(prod_plan: Plan, promoted: Plan) -> None:
    assert "drWriterEndpoint" not in prod_plan.outputs
    assert promoted.outputs["drWriterEndpoint"] == "pgha-prod-dr-replica.cmocked.eu-central-1.rds.amazonaws.com"
    assert promoted.outputs["drReplicaArn"] == prod_plan.outputs["drReplicaArn"]
    new = {"drWriterEndpoint", "drMasterSecretArn"}
    assert {k: v for k, v in promoted.outputs.items() if k not in new} == prod_plan.outputs


def test_unprotected_stack_promotes_without_a_final_snapshot() -> None:
    plan = run_program("dev", {"drRegion": "eu-central-1", "drPromoted": "true"})
    dr = plan.get("pgha-dev-dr-replica")
    assert "replicateSourceDb" not in dr.inputs
    assert dr.inputs["skipFinalSnapshot"] is True and "finalSnapshotIdentifier" not in dr.inputs
    assert not dr.protect


def test_production_dr_replica_is_multi_az_before_and_after_promotion(prod_plan: Plan, promoted: Plan) -> None:
    """Promoted, it is a production primary, which the policy pack holds to Multi-AZ (RDS.5): it is one already
    as a replica, so declaring the promotion adds no Multi-AZ change to the update."""
    assert prod_plan.get(DR).inputs["multiAz"] is True
    assert promoted.get(DR).inputs["multiAz"] is True
    assert "availabilityZone" not in promoted.get(DR).inputs


def test_production_after_the_promotion_passes_the_policy_pack(promoted: Plan) -> None:
    assert [v for v in evaluate_plan(promoted) if v.mandatory] == []
    assert evaluate_plan(promoted) == []


@pytest.mark.parametrize("promoted_", ["false", "true"])
def test_non_production_dr_replica_stays_single_az(promoted_: str) -> None:
    plan = run_program("dev", {"drRegion": "eu-central-1", "drPromoted": promoted_})
    assert plan.get("pgha-dev-dr-replica").inputs["multiAz"] is False
