"""The configuration contract: the shipped default loads; errors name the file and the key."""

from __future__ import annotations

import pytest

from ops_project.common.config import secret
from ops_project.common.errors import ConfigError, SecretMissingError
from ops_project.config import DEFAULT_CONFIG, load_config


def test_shipped_default_needs_no_server_and_no_secret():
    cfg = load_config(DEFAULT_CONFIG)
    assert cfg.primary.kind == "local" and len(cfg.regions) >= 2
    assert all(r.kind == "local" for r in cfg.regions)
    assert cfg.databases[0].engine == "sqlite" and cfg.databases[0].demo_size_mb
    assert cfg.backup.encryption.age_recipients_env is None
    assert str(cfg.databases[0].path).startswith(str(DEFAULT_CONFIG.parent / ".ops"))


def test_ops_config_env_selects_another_file(tmp_path, monkeypatch, write_config):
    path = write_config([{"name": "core", "engine": "postgres", "url_env": "CORE_URL"}],
                        [{"name": "r1", "kind": "local", "path": "regions/r1"}])
    monkeypatch.setenv("OPS_CONFIG", str(path))
    cfg = load_config()
    assert cfg.source == path and cfg.databases[0].name == "core"
    assert cfg.regions[0].path == path.parent / "regions/r1"  # relative to the file


@pytest.mark.parametrize("mutate, key, words", [
    (lambda d: d["regions"][0].update(kind="ftp"), "regions[0].kind", "Input should be"),
    (lambda d: d["databases"][0].pop("path"), "databases[0]", "needs 'path'"),
    (lambda d: d["backup"].update(compression={"level": 99}), "backup.compression.level", "less than or equal"),
    (lambda d: d.update(timezone="Mars/Olympus"), "timezone", "unknown time zone"),
    (lambda d: d["backup"].update(cron="every day"), "backup.cron", "five-field cron"),
    (lambda d: d["backup"].update(retension={}), "backup.retension", "unknown key"),
    (lambda d: d["regions"].append(dict(d["regions"][0])), "(top level)", "duplicate name"),
    (lambda d: d["backup"].update(retention={"keep_last": 0}), "backup.retention.keep_last", "greater than"),
    # Siblings that used to reach Dagster (a load error in the UI) or crash with a raw traceback:
    (lambda d: d["backup"].update(cron="61 * * * *"), "backup.cron", "not a valid cron expression"),
    (lambda d: d["backup"].update(retention_cron="0 25 * * *"), "backup.retention_cron", "not a valid cron"),
    (lambda d: d.update(drills={"cron": "sometimes"}), "drills.cron", "five-field cron"),
    (lambda d: d.update(drills={"cron": "0 2 31 2 *"}), "drills.cron", "not a valid cron expression"),
    (lambda d: d.update(releases={"repo": "r", "tag_pattern": "v(\\d+"}), "releases.tag_pattern",
     "not a valid regular expression"),
    (lambda d: d["regions"].append({"name": "r-1", "kind": "local", "path": "r2"}) or
     d["regions"].__setitem__(0, {"name": "r_1", "kind": "local", "path": "r1"}), "(top level)",
     "r-1 and r_1 are the same name once '-' becomes '_'"),
    (lambda d: d["databases"].append({"name": "booking-1", "engine": "sqlite", "path": "c.db"}) or
     d["databases"].append({"name": "booking_1", "engine": "sqlite", "path": "d.db"}), "(top level)",
     "booking-1 and booking_1 are the same name"),
    (lambda d: d["regions"].append({"name": "r2", "kind": "local", "path": "r1/inner"}), "(top level)",
     "regions r1 and r2 overlap"),
    (lambda d: d["regions"].append({"name": "r2", "kind": "local", "path": "./r1"}), "(top level)",
     "regions r1 and r2 overlap"),
    (lambda d: d["backup"].update(batch_size=0), "backup.batch_size", "greater than or equal to 1"),
    (lambda d: d.update(execution={"executor": "kubernetes"}), "execution.executor", "Input should be"),
    (lambda d: d.update(execution={"executor": "celery", "celery": {"queue": "a b"}}), "execution.celery.queue",
     "not a queue name"),
    (lambda d: d.update(execution={"executor": "celery", "celery": {"backend": "redis://:pw@host/0"}}),
     "execution.celery.backend", "is a secret"),
])
def test_bad_values_name_file_and_key(tmp_path, mutate, key, words):
    import yaml

    doc = {"databases": [{"name": "booking", "engine": "sqlite", "path": "b.db"}],
           "regions": [{"name": "r1", "kind": "local", "path": "r1"}], "backup": {}}
    mutate(doc)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message and key in message and words in message


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "x.yaml").write_text("databases: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "x.yaml")


def test_secret_missing_names_variable_never_value():
    with pytest.raises(SecretMissingError, match="OPS_NOPE_SECRET .*backup.x"):
        secret("OPS_NOPE_SECRET", what="backup.x", env={})
    assert secret("V", what="w", env={"V": "s3cr3t"}) == "s3cr3t"
