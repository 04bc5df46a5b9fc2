"""``deploy_validation``: one partition per release tag, so every release's verdict stays in the UI."""

import json

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    DynamicPartitionsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from assets.guard import guarded
from ops_project.clients import Clients
from ops_project.config import OpsConfig
from ops_project.releases.baseline import ReleaseOutcome, last_good_release
from ops_project.releases.validate import validate

DEPLOY_KEY = AssetKey("deploy_validation")
releases_partitions = DynamicPartitionsDefinition(name="releases")


def previous_good_release(context: AssetExecutionContext, current: str) -> tuple[str, dict[str, float]] | None:
    """The recorded validations, newest first, handed to the domain rule (``last_good_release``)."""
    history = []
    for rec in context.instance.fetch_materializations(DEPLOY_KEY, limit=100).records:
        mat = rec.asset_materialization
        if mat is not None and mat.partition:
            history.append(ReleaseOutcome.from_metadata(mat.partition, {k: v.value for k, v in mat.metadata.items()}))
    return last_good_release(history, current)


def build_release_assets(cfg: OpsConfig) -> list[AssetsDefinition]:
    if cfg.releases is None:
        return []

    @asset(
        key=DEPLOY_KEY,
        partitions_def=releases_partitions,
        required_resource_keys={"ops_config"},
        kinds={"http"},
        group_name="releases",
        op_tags={"ops/kind": "deploy_validation"},
        description=(
            "Is the deployed service really this release, and does it work? The served /version must equal the "
            "tag (waiting for the rollout), every health endpoint must answer, the booking smoke flow (services → "
            "availability → book → cancel) must succeed and leave nothing behind, p95 latency per endpoint must "
            "stay under the budget with an error rate under the limit (retried attempts count), and p95 must not "
            "regress beyond the configured factor against the last release that passed. On failure the rollback "
            "command (if configured) runs with the previous good tag."),
    )
    @guarded
    def deploy_validation(context: AssetExecutionContext) -> MaterializeResult:
        ops_cfg = context.resources.ops_config.load()
        releases = ops_cfg.releases
        tag = context.partition_key
        previous = previous_good_release(context, tag)
        verdict = validate(tag, releases.target, previous=previous, rollback_command=releases.rollback_command,
                           rollback_env=releases.rollback_env, rollback_timeout=releases.rollback_timeout_seconds,
                           secrets=Clients(ops_cfg).secret_values())
        metadata = {
            "verdict": "passed" if verdict.passed else "failed",
            "summary": MetadataValue.md(verdict.markdown()),
            "p95_ms_json": json.dumps(verdict.p95_ms),
            "error_rate": round(verdict.error_rate, 4),
            "compared_with": previous[0] if previous else "none",
            **{f"check_{c.name}": ("pass: " if c.passed else "FAIL: ") + c.message[:500] for c in verdict.checks},
        }
        if verdict.rollback:
            rb = verdict.rollback
            metadata["rollback_ran"] = not rb.get("skipped", False)
            metadata["rollback_summary"] = verdict.rollback_summary()
            metadata["broken_release_live"] = verdict.broken_release_live
            if rb.get("to"):
                metadata["rollback_to"] = rb["to"]
            if rb.get("skipped"):
                metadata["rollback_skipped_reason"] = rb.get("reason", "")
            else:
                metadata["rollback_timed_out"] = bool(rb.get("timed_out"))
                if rb.get("exit_code") is not None and not rb.get("timed_out"):
                    metadata["rollback_exit_code"] = rb["exit_code"]
                metadata["rollback_output"] = MetadataValue.md("```\n" + rb["output"][-3000:] + "\n```")
        if not verdict.passed:
            # Recorded as a failed step with every number, so the UI (and alerting) sees a failed release.
            context.log.error(verdict.markdown())
            raise Failure(description=f"release {tag} failed deploy validation: " + "; ".join(
                f"{c.name}: {c.message}" for c in verdict.checks if not c.passed) + ". " + verdict.rollback_summary(),
                metadata=metadata)
        context.log.info(verdict.markdown())
        return MaterializeResult(metadata=metadata)

    return [deploy_validation]
