"""Release tags: read a Git repository's tags and decide which are new since the last look.

``git ls-remote --tags`` reads a local path or any remote URL git can reach, without a clone.
The cursor is small JSON: ``{"tags": {tag: sha}}`` for the newest ``CURSOR_LIMIT`` matching tags,
so a tag is seen once, a moved tag (new sha) is seen again, and a deleted tag starts nothing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from ops_project.common.errors import OpsError

CURSOR_LIMIT = 500
TIMEOUT_SECONDS = 30


class RepoUnreachable(OpsError):
    pass


@dataclass(frozen=True)
class Release:
    tag: str
    sha: str

    @property
    def run_key(self) -> str:
        return f"{self.tag}@{self.sha}"


def redact_repo(repo: str) -> str:
    """A repository URL fit to show: no user or token (``https://user:token@host``), no query string
    (``?private_token=…``); local paths and ``git@host:path`` are shown as they are."""
    parts = urlsplit(repo)
    if not parts.scheme or not parts.netloc:
        return repo
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def remote_tags(repo: str) -> dict[str, str]:
    """{tag: commit sha} (annotated tags peeled to their commit)."""
    try:
        proc = subprocess.run(["git", "ls-remote", "--tags", "--", repo], capture_output=True, text=True,
                              timeout=TIMEOUT_SECONDS, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    except subprocess.TimeoutExpired:
        raise RepoUnreachable(f"git ls-remote {redact_repo(repo)}: no answer within {TIMEOUT_SECONDS}s") from None
    except FileNotFoundError:
        raise RepoUnreachable("git is not installed (needed to read release tags)") from None
    if proc.returncode != 0:
        reason = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
        reason = reason.replace(repo, redact_repo(repo))
        secret_parts = [p for p in (urlsplit(repo).password, urlsplit(repo).query) if p]
        for part in secret_parts:
            reason = reason.replace(part, "[redacted]")
        raise RepoUnreachable(f"git ls-remote {redact_repo(repo)} failed: {reason}")
    tags: dict[str, str] = {}
    peeled: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        sha, _, ref = line.partition("\t")
        if not ref.startswith("refs/tags/"):
            continue
        name = ref[len("refs/tags/"):]
        if name.endswith("^{}"):
            peeled[name[:-3]] = sha
        else:
            tags[name] = sha
    return {name: peeled.get(name, sha) for name, sha in tags.items()}


def version_key(tag: str) -> tuple:
    """Sort key: numeric parts compare as numbers (v1.10.0 after v1.9.3)."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", tag))


def load_cursor(raw: str | None) -> dict[str, str] | None:
    if not raw:
        return None
    try:
        doc = json.loads(raw)
        return {str(k): str(v) for k, v in doc["tags"].items()}
    except (ValueError, KeyError, AttributeError, TypeError):
        return None


def dump_cursor(tags: dict[str, str]) -> str:
    newest = sorted(tags, key=version_key)[-CURSOR_LIMIT:]
    return json.dumps({"tags": {t: tags[t] for t in newest}}, separators=(",", ":"), sort_keys=True)


def new_releases(seen: dict[str, str] | None, current: dict[str, str], pattern: str, *,
                 run_existing: bool = False) -> tuple[list[Release], dict[str, str]]:
    """Releases to validate, oldest first, and the tags to remember.

    On the first look (``seen`` is None) the tags already there are recorded and, unless
    ``run_existing``, nothing is started for them. Tags older than everything the bounded cursor
    remembers are not treated as new.
    """
    regex = re.compile(pattern)
    matching = {t: s for t, s in current.items() if regex.search(t)}
    if seen is None and not run_existing:
        return [], matching
    seen = seen or {}
    floor = min(seen, key=version_key) if len(seen) >= CURSOR_LIMIT else None
    fresh = [Release(t, s) for t, s in matching.items()
             if seen.get(t) != s and (floor is None or t in seen or version_key(t) > version_key(floor))]
    fresh.sort(key=lambda r: version_key(r.tag))
    return fresh, matching
