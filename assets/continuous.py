"""``continuous_replication`` (check ``current_rpo``) and ``point_in_time_restore`` (check ``point_in_time``):
Dagster's part of continuous protection. Litestream itself runs under a process supervisor, not in a run
(``python -m ops_project continuous run``, deploy/systemd/ops-litestream.service); these prove its output."""

import os
import random
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from assets.guard import guarded
from ops_project.backups.restore import NoBackupError
from ops_project.common.errors import IntegrityError
from ops_project.common.markdown import table
from ops_project.config import OpsConfig
from ops_project.continuous.litestream import KEEP, RestoreFailed
from ops_project.continuous.pgbackrest import ArchiveFailed
from ops_project.continuous.replicas import judge_replica, read_protected
from ops_project.notify.rules import REPORTED_BY_CHECKS
from resources import region_key

REPLICATION_KEY = AssetKey("continuous_replication")
PITR_KEY = AssetKey("point_in_time_restore")
BASE_BACKUP_KEY = AssetKey("continuous_base_backup")
CURRENT_RPO_CHECK = "current_rpo"
PITR_CHECK = "point_in_time"


def region_environment(cfg: OpsConfig, resources) -> dict[str, str]:
    """What Litestream may be given: the basics of this process's environment and the regions' secrets as their
    resources resolved them (EnvVar)."""
    env = {k: os.environ[k] for k in (*KEEP, "SSL_CERT_FILE", "SSL_CERT_DIR") if os.environ.get(k)}
    for region in cfg.regions:
        res = getattr(resources, region_key(region.name))
        for var, value in ((region.endpoint_url_env, res.endpoint_url), (region.access_key_id_env, res.access_key_id),
                           (region.secret_access_key_env, res.secret_access_key)):
            if var and value:
                env[var] = value
    return env


def current_findings(cfg: OpsConfig, stores) -> list:
    """As ``replicas.survey``, through the regions' resources (their EnvVar secrets)."""
    now = datetime.now(UTC)
    return [judge_replica(cfg, db, read_protected(store, db), now)
            for store in stores for db in cfg.continuous_protected]


def _protected(cfg: OpsConfig) -> None:
    if not cfg.continuous_protected:
        raise Failure(description=f"{cfg.source}: the continuous section protects no database (continuous.databases "
                                  f"names none of the declared SQLite databases, continuous.postgres none of the "
                                  f"PostgreSQL ones): nothing to check")


def _kinds(cfg: OpsConfig) -> set[str]:
    return {"python", *(db.engine for db in cfg.continuous_protected)} if cfg.continuous_protected else {"python"}


def _test_one(cfg: OpsConfig, db, store, resources, *, rng, now, scratch: Path, env):
    """One database's point-in-time restore test, by its engine."""
    from ops_project.continuous.pitr import run_test, run_test_pg

    if db.engine == "postgres":
        return run_test_pg(cfg, db, resources.databases.prepare(db.name), store, rng=rng, now=now, scratch=scratch,
                           env=env)
    return run_test(cfg, db, store, rng=rng, now=now, scratch=scratch, env=env)


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.0f}"


def build_continuous_assets(cfg: OpsConfig) -> list[AssetsDefinition]:
    if cfg.continuous is None:
        return []
    regions = {"ops_config", "databases", *(region_key(r.name) for r in cfg.regions)}

    @asset(key=REPLICATION_KEY, required_resource_keys=regions, group_name="continuous", owners=cfg.owners,
           kinds=_kinds(cfg), op_tags={"ops/kind": "rpo"},
           check_specs=[AssetCheckSpec(CURRENT_RPO_CHECK, asset=REPLICATION_KEY,
                                       description="every continuous replica is advancing, within the RPO")],
           description=(
               "How far Litestream's replica of each continuously protected SQLite database has got in each region, "
               "and of pgBackRest's WAL archive of each PostgreSQL cluster: the current RPO (when its newest WAL "
               "segment arrived there), read from the regions themselves. "
               "Check `current_rpo` fails naming every replica that has stopped advancing, has never started, or "
               "is over the RPO objective; a region that cannot be read fails the run as our environment's "
               "failure, with no verdict. Materialized by continuous_replication_sensor when something changes, "
               "and hourly."))
    @guarded
    def continuous_replication(context: AssetExecutionContext):
        ops_cfg = context.resources.ops_config.load()
        _protected(ops_cfg)
        stores = [getattr(context.resources, region_key(r.name)).store() for r in ops_cfg.regions]
        findings = current_findings(ops_cfg, stores)
        unreachable = [f for f in findings if f.status == "unreachable"]
        bad = [f for f in findings if not f.ok and f.status != "unreachable"]
        metadata = {f"{f.database}_{f.region}_current_rpo_seconds": round(f.age_seconds, 1)
                    for f in findings if f.age_seconds is not None}
        metadata["rpo_objective_seconds"] = ops_cfg.objectives.rpo_minutes * 60
        metadata["summary"] = MetadataValue.md(table(
            ["database", "region", "status", "current RPO (s, at most)", "ok"],
            [(f.database, f.region, f.status, _age(f.age_seconds), "yes" if f.ok else "NO") for f in findings]))
        if unreachable and not bad:
            raise Failure(description="could not read the continuous replicas (our environment, not a verdict on "
                                      "them): " + "; ".join(f.text for f in unreachable),
                          metadata={"outcome": "inconclusive", **metadata})
        text = "; ".join(f.text for f in bad + unreachable) if bad else \
            f"{len(findings)} replicas advancing; current RPO at most " \
            f"{max((f.age_seconds or 0.0) for f in findings):.0f} s"
        check = AssetCheckResult(asset_key=REPLICATION_KEY, check_name=CURRENT_RPO_CHECK, passed=not bad,
                                 severity=AssetCheckSeverity.ERROR, description=text[:1000],
                                 metadata={"replicas": len(findings), "failing": len(bad),
                                           "unreachable": len(unreachable)})
        yield MaterializeResult(metadata=metadata, check_results=[check])
        if bad:
            raise Failure(description=text, metadata={REPORTED_BY_CHECKS: True})

    @asset(key=PITR_KEY, required_resource_keys=regions, group_name="continuous", owners=cfg.owners,
           kinds=_kinds(cfg), op_tags={"ops/kind": "restore"},
           check_specs=[AssetCheckSpec(PITR_CHECK, asset=PITR_KEY,
                                       description="a restore to a random moment, and to the newest position, "
                                                   "holds exactly the changes made by then")],
           description=(
               "The point-in-time restore test: for each continuously protected database, Litestream (SQLite) or "
               "pgBackRest (PostgreSQL, the whole cluster, started on a socket of its own) restores it from the "
               "restore region to a random moment of the last day, and to its newest position, into scratch. "
               "Each restore must be whole (PRAGMA integrity_check; a recovered, promoted server whose every "
               "table reads to the end), hold every marker row "
               "written up to the moment (less the replication delay) and none written after it. A passed test "
               "moves the database's verified point in time forward (verified_rpo counts the better of it and "
               "the verified snapshot)."))
    @guarded
    def point_in_time_restore(context: AssetExecutionContext):
        from ops_project.continuous.record import not_due, record

        ops_cfg = context.resources.ops_config.load()
        _protected(ops_cfg)
        region = ops_cfg.restore_region
        store = getattr(context.resources, region_key(region.name)).store()
        env = region_environment(ops_cfg, context.resources)
        rng = random.Random()
        scratch = Path(tempfile.mkdtemp(prefix="ops-pitr-", dir=ops_cfg.restore.scratch_dir))
        scratch.chmod(0o711)  # a restored PostgreSQL cluster below it belongs to the cluster's owner
        results, trouble, failed, skipped = [], [], [], []
        try:
            for db in ops_cfg.continuous_protected:
                now = datetime.now(UTC)
                why = not_due(ops_cfg, db, store, now)
                if why is not None:
                    skipped.append((db.name, why))
                    context.log.info(f"{db.name}: {why}")
                    continue
                try:
                    result = _test_one(ops_cfg, db, store, context.resources, rng=rng, now=now, scratch=scratch,
                                       env=env)
                except (RestoreFailed, ArchiveFailed) as exc:
                    trouble.append(str(exc))
                    continue
                except (NoBackupError, IntegrityError) as exc:  # nothing to restore, or it does not read back:
                    failed.append(f"{db.name}: {exc}")         # a verdict on the continuous copy
                    continue
                finally:
                    for leftover in scratch.iterdir():
                        if leftover.is_dir():
                            shutil.rmtree(leftover, ignore_errors=True)
                        else:
                            leftover.unlink(missing_ok=True)
                record(store, result, tested_at=now)
                results.append(result)
                context.log.info(f"{db.name}: point-in-time restore test {'passed' if result.passed else 'FAILED'}"
                                 f" from {region.name}")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        rows = []
        metadata: dict = {"region": region.name}
        for r in results:
            for kind, proof in (("moment", r.moment), ("newest", r.newest)):
                if proof is None:
                    rows.append((r.database, kind, "-", "-", "-", r.note))
                    continue
                bad = [c for c in proof.checks if not c.passed]
                failed += [f"{r.database} ({kind} {proof.target:%Y-%m-%dT%H:%M:%SZ}): {c.name}: {c.text}"
                           for c in bad]
                rows.append((r.database, kind, f"{proof.target:%Y-%m-%dT%H:%M:%SZ}", _age(proof.gap_seconds),
                             f"{proof.restore_seconds:.1f}", "passed" if not bad else "FAILED"))
            if r.moment is not None and r.moment.gap_seconds is not None:
                metadata[f"{r.database}_achieved_rpo_seconds"] = round(r.moment.gap_seconds, 1)
            if r.verified_to is not None:
                metadata[f"{r.database}_verified_to"] = r.verified_to.isoformat(timespec="seconds")
        rows += [(name, "-", "-", "-", "-", f"not due: {why}") for name, why in skipped]
        metadata["summary"] = MetadataValue.md(table(
            ["database", "restore to", "moment", "newest change before it (s)", "restore (s)", "verdict"], rows))
        if trouble and not failed:
            raise Failure(description="could not run the point-in-time restore test (our environment, not a verdict "
                                      "on the replicas): " + "; ".join(trouble),
                          metadata={"outcome": "inconclusive", **metadata})
        text = "; ".join([*failed, *trouble]) if failed else \
            f"{len(results)} database(s) restored to a moment and to their newest position, every change accounted" \
            + (f"; {len(skipped)} not due (their last test passed)" if skipped else "")
        check = AssetCheckResult(asset_key=PITR_KEY, check_name=PITR_CHECK, passed=not failed,
                                 severity=AssetCheckSeverity.ERROR, description=text[:1000],
                                 metadata={"databases": len(results), "failed": len(failed)})
        yield MaterializeResult(metadata=metadata, check_results=[check])
        if failed:
            raise Failure(description=text, metadata={REPORTED_BY_CHECKS: True})

    return [continuous_replication, point_in_time_restore, *_base_backup_assets(cfg, regions)]


def _base_backup_assets(cfg: OpsConfig, resource_keys: set[str]) -> list[AssetsDefinition]:
    if not cfg.continuous_postgres:
        return []

    @asset(key=BASE_BACKUP_KEY, required_resource_keys=resource_keys, group_name="continuous", owners=cfg.owners,
           kinds={"postgres", "python"}, op_tags={"ops/kind": "backup"},
           description=(
               "A full pgBackRest backup of each WAL-archived PostgreSQL cluster into every region (older ones "
               "expire per continuous.base_backups_kept, with the WAL only they needed). A restore to a moment "
               "starts from the newest full backup before it and replays the archived WAL. It runs on the "
               "database host, as the cluster's owner."))
    @guarded
    def continuous_base_backup(context: AssetExecutionContext):
        from ops_project.continuous.pgbackrest import base_backup

        ops_cfg = context.resources.ops_config.load()
        env = region_environment(ops_cfg, context.resources)
        done, trouble = [], []
        for db in ops_cfg.continuous_postgres:
            try:
                done += base_backup(ops_cfg, db.name, env=env)
            except ArchiveFailed as exc:
                trouble.append(str(exc))
        rows = [(b.database, b.region, b.label, f"{b.seconds:.1f}") for b in done]
        metadata = {"summary": MetadataValue.md(table(["database", "region", "full backup", "seconds"], rows)),
                    **{f"{b.database}_{b.region}_label": b.label for b in done}}
        if trouble:
            raise Failure(description="; ".join(trouble), metadata=metadata)
        return MaterializeResult(metadata=metadata)

    return [continuous_base_backup]
