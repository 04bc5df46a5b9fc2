"""``release_tag_sensor``: new or moved release tags in Git → ``deploy_validation`` runs."""

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from assets.releases import releases_partitions
from ops_project.config import OpsConfig
from ops_project.releases.tags import (
    RepoUnreachable,
    dump_cursor,
    load_cursor,
    new_releases,
    redact_repo,
    remote_tags,
)


def build_release_sensor(cfg: OpsConfig, job) -> SensorDefinition | None:
    if cfg.releases is None:
        return None
    releases = cfg.releases
    shown = redact_repo(releases.repo)  # the UI and every tick show this, never a token in the URL

    @sensor(name="release_tag_sensor", job=job, minimum_interval_seconds=releases.minimum_interval_seconds,
            default_status=DefaultSensorStatus.RUNNING,
            description=f"Watches {shown} for tags matching {releases.tag_pattern}; each new tag, or a tag "
                        f"moved to another commit, gets a releases partition and a deploy_validation run.")
    def release_tag_sensor(context: SensorEvaluationContext):
        try:
            current = remote_tags(releases.repo)
        except RepoUnreachable as exc:
            return SkipReason(f"cannot read tags of {shown}: {exc}; cursor unchanged, no tag lost")
        seen = load_cursor(context.cursor)  # CursorUnreadable fails the tick, loudly: never a silent first look
        fresh, remember, note = new_releases(seen, current, releases.tag_pattern,
                                             run_existing=releases.run_existing_on_first_tick)
        cursor = dump_cursor(remember)
        if note:
            context.log.warning(note)
        if not fresh:
            known = len(remember.tags) + len(remember.older)
            first = f"first look at {shown}: recorded {known} existing tag(s) matching the pattern, started nothing"
            reason = note or (first if seen is None else f"no new or moved tags in {shown} ({known} known)")
            return SensorResult(skip_reason=SkipReason(reason), cursor=cursor)
        new_keys = sorted({r.tag for r in fresh} - set(context.instance.get_dynamic_partitions("releases")))
        return SensorResult(
            run_requests=[RunRequest(run_key=r.run_key, partition_key=r.tag,
                                     tags={"ops/kind": "deploy_validation", "ops/release": r.tag, "ops/sha": r.sha})
                          for r in fresh],
            dynamic_partitions_requests=[releases_partitions.build_add_request(new_keys)] if new_keys else [],
            cursor=cursor,
        )

    return release_tag_sensor
