"""The one factory: configuration → clients, the same for the CLI (os.environ) and Dagster (resolved EnvVars)."""

from __future__ import annotations

import pytest

from ops_project.clients import Clients
from ops_project.common.errors import ConfigError, SecretMissingError
from ops_project.config import load_config
from ops_project.storage import open_store
from resources import build_resources, region_key


@pytest.fixture
def cfg(tmp_path, write_config):
    path = write_config([{"name": "core", "engine": "postgres", "url_env": "OPS_T_CORE"},
                         {"name": "booking", "engine": "sqlite", "path": str(tmp_path / "b.db")}],
                        [{"name": "af-south-1", "kind": "local", "path": str(tmp_path / "af"), "create": True},
                         {"name": "eu-west-1", "kind": "s3", "bucket": "bk", "endpoint_url_env": "OPS_T_EP",
                          "access_key_id_env": "OPS_T_KEY", "secret_access_key_env": "OPS_T_SECRET"}],
                        restore={"postgres_scratch_url_env": "OPS_T_SCRATCH"},
                        alerts={"webhook_url_env": "OPS_T_HOOK", "ui_base_url": "https://dagster.example/"})
    return load_config(path)


ENV = {"OPS_T_CORE": "postgresql://u:pw-core-123@db/core", "OPS_T_EP": "http://127.0.0.1:9",
       "OPS_T_KEY": "key-id-1", "OPS_T_SECRET": "secret-value-1", "OPS_T_SCRATCH": "postgresql://u@scratch/x",
       "OPS_T_HOOK": "http://127.0.0.1:9/hook-secret"}


def test_cli_and_dagster_get_the_same_clients(cfg, monkeypatch):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    cli = Clients(cfg)  # the CLI path: os.environ
    resources = {k: r for k, r in build_resources(cfg).items()}
    # Dagster resolves EnvVar fields at run time; process_config_and_initialize does the same here.
    live = {k: r.process_config_and_initialize() for k, r in resources.items()}
    dagster_store, cli_store = live[region_key("eu-west-1")].store(), cli.store(cfg.region("eu-west-1"))
    assert dagster_store.describe("k") == cli_store.describe("k") == "s3://bk/k"
    for store in (dagster_store, cli_store):
        creds = store.client._request_signer._credentials
        assert (store.client.meta.endpoint_url, creds.access_key, creds.secret_key) == \
            ("http://127.0.0.1:9", "key-id-1", "secret-value-1")
    assert live[region_key("af-south-1")].store().describe() == cli.store("af-south-1").describe()
    core = cfg.database("core")
    assert live["databases"].prepare("core") == cli.database_url(core) == ENV["OPS_T_CORE"]
    assert live["databases"].server_for_scratch("core") == cli.scratch_server(core) == ENV["OPS_T_SCRATCH"]
    assert cli.scratch_server(cfg.database("booking")) is None
    notifier = live["notifier"].get()
    assert notifier.channels["slack"].webhook_url == cli.notifier().channels["slack"].webhook_url == ENV["OPS_T_HOOK"]
    assert set(ENV.values()) <= set(notifier.secrets)  # every named variable's value is scrubbed
    assert live["notifier"].run_link("abc") == cli.run_link("abc") == "https://dagster.example/runs/abc"


def test_a_missing_variable_names_the_variable_and_the_key(cfg):
    clients = Clients(cfg, env={})
    with pytest.raises(SecretMissingError, match=r"OPS_T_EP \(named by regions.eu-west-1.endpoint_url_env\)"):
        clients.store("eu-west-1")
    with pytest.raises(SecretMissingError, match=r"OPS_T_CORE \(named by databases.core.url_env\)"):
        clients.database_url(cfg.database("core"))
    assert clients.recipients() is None and clients.identities() is None  # encryption not configured
    # alerts named but their variable unset: a clear error, never alerts silently switched off
    with pytest.raises(SecretMissingError, match=r"OPS_T_HOOK \(named by alerts.webhook_url_env\)"):
        clients.notifier()
    assert not Clients(cfg.model_copy(update={"alerts": None}), env={}).notifier().enabled  # no alerts configured


def test_scratch_databases_go_to_the_production_server_only_when_said_so(tmp_path, write_config):
    dbs = [{"name": "core", "engine": "postgres", "url_env": "OPS_T_CORE"}]
    regions = [{"name": "r", "kind": "local", "path": str(tmp_path / "r"), "create": True}]
    silent = Clients(load_config(write_config(dbs, regions)), env=ENV)
    with pytest.raises(ConfigError, match="restore.postgres_scratch_url_env .*restore.scratch_on_source"):
        silent.scratch_server(silent.cfg.database("core"))
    explicit = Clients(load_config(write_config(dbs, regions, restore={"scratch_on_source": True})), env=ENV)
    assert explicit.scratch_server(explicit.cfg.database("core")) == ENV["OPS_T_CORE"]


def test_open_store_refuses_to_guess_credentials(cfg):
    with pytest.raises(ConfigError, match="ops_project.clients"):
        open_store(cfg.region("eu-west-1"))
