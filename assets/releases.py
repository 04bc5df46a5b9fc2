"""``deploy_validation``: one partition per release tag, so every release's verdict stays in the UI.

A release that passes materialises its partition; one that fails records its own numbers (as an
observation of its partition, never the last good release's) and its gate checks, then fails the step:
its partition reads failed.
"""

import json
import warnings

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetObservation,
    AssetsDefinition,
    AssetSpec,
    DynamicPartitionsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)
from dagster._utils.warnings import PreviewWarning

from assets.guard import guarded
from ops_project.clients import Clients
from ops_project.common.checks import failure_summary
from ops_project.config import OpsConfig
from ops_project.releases.baseline import ReleaseOutcome, last_good_outcome

DEPLOY_KEY = AssetKey("deploy_validation")
releases_partitions = DynamicPartitionsDefinition(name="releases")
GATES = {
    "version": "the service serves this tag (after waiting for the rollout)",
    "health": "every health endpoint answers 200",
    "smoke_flow": "services → availability → book → cancel works and leaves nothing behind",
    "latency_budget": "p95 under the budget and the error rate under the limit on every endpoint",
    "regression": "not slower than the last good release (Mann-Whitney U, factor and floor)",
}
SAMPLES_KEPT = 500  # per endpoint, in the metadata: the next release's baseline


def recorded_validations(instance, limit: int = 100) -> list[tuple[float, ReleaseOutcome]]:
    """The recorded validations (passes are materialisations, failures observations) with their times, newest
    first."""
    events = []
    for rec in instance.fetch_materializations(DEPLOY_KEY, limit=limit).records:
        if rec.asset_materialization is not None and rec.asset_materialization.partition:
            events.append((rec.timestamp, rec.asset_materialization))
    for rec in instance.fetch_observations(DEPLOY_KEY, limit=limit).records:
        if rec.asset_observation is not None and rec.asset_observation.partition:
            events.append((rec.timestamp, rec.asset_observation))
    events.sort(key=lambda e: e[0], reverse=True)
    return [(at, ReleaseOutcome.from_metadata(ev.partition, {k: v.value for k, v in ev.metadata.items()}))
            for at, ev in events]


def previous_good(context: AssetExecutionContext, current: str) -> ReleaseOutcome | None:
    """The last good release before ``current``, by the domain rule over the recorded validations."""
    return last_good_outcome([outcome for _, outcome in recorded_validations(context.instance)], current)


def _gate_specs() -> list[AssetCheckSpec]:
    with warnings.catch_warnings():  # partitioned checks are a Dagster preview: used on purpose, here
        warnings.simplefilter("ignore", PreviewWarning)
        return [AssetCheckSpec(name, asset=DEPLOY_KEY, description=what, partitions_def=releases_partitions)
                for name, what in GATES.items()]


def _metadata(verdict, previous: ReleaseOutcome | None) -> dict:
    """``verdict``: an ``ops_project.releases.validate.Verdict``."""
    metadata = {
        "verdict": "passed" if verdict.passed else "failed",
        "summary": MetadataValue.md(verdict.markdown()),
        "p95_ms_json": json.dumps(verdict.p95_ms),
        "latency_samples_json": json.dumps({p: s[:SAMPLES_KEPT] for p, s in (verdict.samples_ms or {}).items()}),
        "error_rate": float(round(verdict.error_rate, 4)),
        "compared_with": previous.tag if previous else "none",
        **{f"check_{c.name}": ("pass: " if c.passed else "FAIL: ") + c.message[:500] for c in verdict.checks},
    }
    if verdict.p95_ms:  # numbers that plot, release over release
        metadata["p95_ms_max"] = float(max(verdict.p95_ms.values()))
        for path, ms in verdict.p95_ms.items():
            metadata[f"p95_ms {path}"] = float(ms)
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
    return metadata


def build_release_assets(cfg: OpsConfig) -> list[AssetsDefinition]:
    if cfg.releases is None:
        return []

    @multi_asset(
        specs=[AssetSpec(
            DEPLOY_KEY, partitions_def=releases_partitions, skippable=True, kinds={"http"}, group_name="releases",
            owners=cfg.owners,
            description=(
                "Is the deployed service really this release, and does it work? The served /version must equal the "
                "tag (waiting for the rollout), every health endpoint must answer, the booking smoke flow (services "
                "→ availability → book → cancel) must succeed and leave nothing behind, p95 latency per endpoint "
                "(after a warm-up) must stay under the budget with an error rate under the limit (retried attempts "
                "count), and the release must not be slower than the last release that passed: a one-sided "
                "Mann-Whitney U test on the latency samples, a p95 factor and an absolute floor must all agree. "
                "One asset check per gate. On failure the rollback command (if configured) runs with the previous "
                "good tag, and the failed release's own numbers are kept as an observation of its partition."))],
        check_specs=_gate_specs(),
        partitions_def=releases_partitions,
        can_subset=True,
        required_resource_keys={"ops_config"},
        op_tags={"ops/kind": "deploy_validation"},
        name="deploy_validation",
    )
    @guarded
    def deploy_validation(context: AssetExecutionContext):
        ops_cfg = context.resources.ops_config.load()
        releases = ops_cfg.releases
        tag = context.partition_key
        previous = previous_good(context, tag)
        from ops_project.releases.validate import validate  # HTTP and statistics, only in the run

        verdict = validate(tag, releases.target, previous=(previous.tag, previous.p95_ms) if previous else None,
                           previous_samples=previous.samples_ms if previous else None,
                           rollback_command=releases.rollback_command, rollback_env=releases.rollback_env,
                           rollback_timeout=releases.rollback_timeout_seconds, secrets=Clients(ops_cfg).secret_values())
        metadata = _metadata(verdict, previous)
        checks = [AssetCheckResult(asset_key=DEPLOY_KEY, check_name=c.name, passed=c.passed,
                                   severity=AssetCheckSeverity.ERROR, description=c.message[:1000])
                  for c in verdict.checks if c.name in GATES]
        if verdict.passed:
            context.log.info(verdict.markdown())
            yield MaterializeResult(asset_key=DEPLOY_KEY, metadata=metadata, check_results=checks)
            return
        # A failed release: its own numbers stay with its partition, its gates say which failed, the step fails.
        context.log.error(verdict.markdown())
        yield AssetObservation(asset_key=DEPLOY_KEY, partition=tag, metadata=metadata)
        yield from checks
        raise Failure(description=f"release {tag} failed deploy validation: {failure_summary(verdict.checks)}. "
                                  f"{verdict.rollback_summary()}", metadata=metadata)

    return [deploy_validation]
