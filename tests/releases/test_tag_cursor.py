"""The release cursor never drops or doubles a tag: real git repositories through the real sensor."""

from __future__ import annotations

import json
import subprocess

import pytest
from dagster import DagsterInstance

from ops_project.definitions import build_definitions
from ops_project.releases.tags import CURSOR_FULL, CursorUnreadable
from tests.releases.test_releases import config, git, tick


def test_a_tag_moved_away_and_back_gets_a_new_run(tmp_path, demo_db, repo, write_config):
    defs = build_definitions(config(write_config, tmp_path, demo_db, repo))
    with DagsterInstance.ephemeral() as instance:
        cursor = tick(defs, instance).cursor
        a = git(repo, "rev-parse", "HEAD")
        git(repo, "tag", "v1.1.0")
        first = tick(defs, instance, cursor)
        git(repo, "commit", "-q", "--allow-empty", "-m", "b")
        git(repo, "tag", "-f", "v1.1.0")  # A → B
        moved = tick(defs, instance, first.cursor)
        again = tick(defs, instance, first.cursor)  # the same tick evaluated twice asks for the same run
        git(repo, "tag", "-f", "v1.1.0", a)  # B → A again
        back = tick(defs, instance, moved.cursor)
    keys = [r.run_key for t in (first, moved, back) for r in t.run_requests]
    assert len(keys) == 3 and len(set(keys)) == 3, keys  # three runs, none swallowed by an old run key
    assert keys[0].startswith(f"v1.1.0@{a}") and keys[2].startswith(f"v1.1.0@{a}")
    assert [r.run_key for r in again.run_requests] == [r.run_key for r in moved.run_requests]


def test_an_unreadable_cursor_is_reported_not_a_first_look(tmp_path, demo_db, repo, write_config):
    defs = build_definitions(config(write_config, tmp_path, demo_db, repo))
    git(repo, "tag", "v1.1.0")
    with DagsterInstance.ephemeral() as instance:
        with pytest.raises(CursorUnreadable, match="cursor cannot be read.*clear the cursor"):
            tick(defs, instance, '{"tags": ["not", "a", "map"]')


def test_a_changed_tag_pattern_does_not_validate_history(tmp_path, demo_db, repo, write_config):
    for i in range(5):
        git(repo, "tag", f"release-{i}")
    old = build_definitions(config(write_config, tmp_path, demo_db, repo))
    new = build_definitions(config(write_config, tmp_path, demo_db, repo, tag_pattern=r"^release-\d+$"))
    with DagsterInstance.ephemeral() as instance:
        cursor = tick(old, instance).cursor
        changed = tick(new, instance, cursor)
        assert changed.run_requests == [] and "tag_pattern changed" in changed.skip_message
        git(repo, "tag", "release-9")
        after = tick(new, instance, changed.cursor)
    assert [r.partition_key for r in after.run_requests] == ["release-9"]


def test_a_hotfix_below_every_remembered_tag_is_still_seen(tmp_path, demo_db, repo, write_config):
    sha = git(repo, "rev-parse", "HEAD")
    count = max(600, CURSOR_FULL * 4)  # more than the old 500-tag cursor held
    refs = "".join(f"create refs/tags/v2.{i // 100}.{i % 100} {sha}\n" for i in range(count))
    subprocess.run(["git", "-C", str(repo), "update-ref", "--stdin"], input=refs, text=True, check=True)
    defs = build_definitions(config(write_config, tmp_path, demo_db, repo))
    with DagsterInstance.ephemeral() as instance:
        cursor = tick(defs, instance).cursor
        git(repo, "tag", "v1.0.5")  # sorts below all of the remembered tags
        git(repo, "tag", "-f", "v2.0.3", git(repo, "commit-tree", "HEAD^{tree}", "-m", "rebuilt"))  # an old one moved
        seen = tick(defs, instance, cursor)
        quiet = tick(defs, instance, seen.cursor)
    assert sorted(r.partition_key for r in seen.run_requests) == ["v1.0.5", "v2.0.3"]
    assert quiet.run_requests == []


def test_an_empty_listing_keeps_the_cursor(tmp_path, demo_db, repo, write_config):
    defs = build_definitions(config(write_config, tmp_path, demo_db, repo))
    with DagsterInstance.ephemeral() as instance:
        cursor = tick(defs, instance).cursor
        git(repo, "tag", "-d", "v1.0.0")  # a mirror re-created empty
        empty = tick(defs, instance, cursor)
        assert empty.run_requests == [] and "lists no tags" in empty.skip_message and empty.cursor == cursor
        git(repo, "tag", "v1.0.0")  # ... and synced again: nothing is new
        assert tick(defs, instance, empty.cursor).run_requests == []


def test_a_first_format_cursor_does_not_validate_what_it_had_forgotten(tmp_path, demo_db, repo, write_config):
    sha = git(repo, "rev-parse", "HEAD")
    refs = "".join(f"create refs/tags/v2.{i // 100}.{i % 100} {sha}\n" for i in range(600))
    subprocess.run(["git", "-C", str(repo), "update-ref", "--stdin"], input=refs, text=True, check=True)
    from ops_project.releases.tags import version_key

    newest = sorted([f"v2.{i // 100}.{i % 100}" for i in range(600)] + ["v1.0.0"], key=version_key)[-500:]
    old_cursor = json.dumps({"tags": {t: sha for t in newest}})  # as the previous release wrote it
    defs = build_definitions(config(write_config, tmp_path, demo_db, repo))
    with DagsterInstance.ephemeral() as instance:
        upgraded = tick(defs, instance, old_cursor)
        git(repo, "tag", "v9.0.0")
        after = tick(defs, instance, upgraded.cursor)
    assert upgraded.run_requests == []
    assert [r.partition_key for r in after.run_requests] == ["v9.0.0"]
