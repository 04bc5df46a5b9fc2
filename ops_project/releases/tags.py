"""Release tags: read a Git repository's tags and decide which are new since the last look.

``git ls-remote --tags`` reads a local path or any remote URL git can reach, without a clone.

The cursor is small JSON that never drops or doubles a tag:
- the newest ``CURSOR_FULL`` matching tags with their commit, so a moved tag (new sha) is seen again;
- every older matching tag as a 4-byte digest of ``tag@sha``, so a hotfix tag that sorts below all of
  those (``v1.4.9`` after ``v2.0.0``) is still new, and an old tag moved is still moved (up to
  ``CURSOR_HASHED`` of them: about 5.4 bytes of cursor per tag, 56 KB for 10,000 tags);
- the tag pattern it was made with: a changed ``tag_pattern`` is a first look for the new pattern,
  not a validation of every historical tag;
- a generation counter, part of every run key (``tag@sha#gen``), so a tag moved A→B→A gets a new run
  while re-evaluating the same tick (same cursor) requests the same keys and Dagster starts nothing twice.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from ops_project.common.errors import OpsError

CURSOR_FULL = 50
CURSOR_HASHED = 20000
TIMEOUT_SECONDS = 30


class RepoUnreachable(OpsError):
    pass


class CursorUnreadable(OpsError):
    pass


@dataclass(frozen=True)
class Release:
    tag: str
    sha: str
    generation: int = 0

    @property
    def run_key(self) -> str:
        return f"{self.tag}@{self.sha}#{self.generation}"


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
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", tag))


def _digest(tag: str, sha: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{tag}@{sha}".encode()).digest()[:4], "big")


@dataclass
class TagCursor:
    pattern: str | None  # None: a cursor from before patterns were recorded (taken as the current one)
    generation: int = 0
    tags: dict[str, str] = field(default_factory=dict)  # the newest tags: tag → commit sha
    older: set[int] = field(default_factory=set)  # digests of tag@sha of every older tag
    truncated: bool = False  # more than CURSOR_HASHED older tags: the oldest are not remembered

    def knows(self, tag: str, sha: str) -> bool:
        return self.tags.get(tag) == sha or _digest(tag, sha) in self.older


def load_cursor(raw: str | None) -> TagCursor | None:
    """None when there is no cursor (a first look); ``CursorUnreadable`` when there is one we cannot read."""
    if not raw:
        return None
    try:
        doc = json.loads(raw)
        tags = {str(k): str(v) for k, v in doc["tags"].items()}
        older_raw = base64.b64decode(doc.get("older", ""), validate=True)
        if len(older_raw) % 4:
            raise ValueError("older digests are not a whole number of 4-byte values")
        older = {int.from_bytes(older_raw[i:i + 4], "big") for i in range(0, len(older_raw), 4)}
        pattern = doc.get("pattern")
        truncated = doc.get("truncated", False)
        if not isinstance(truncated, bool):
            raise ValueError("truncated must be true or false")
        if "v" not in doc and len(tags) >= 500:  # a cursor of the first format held only the newest 500 tags:
            truncated = True  # what sorts below them was seen before (the old floor), not new
        return TagCursor(pattern=None if pattern is None else str(pattern), generation=int(doc.get("gen", 0)),
                         tags=tags, older=older, truncated=truncated)
    except (ValueError, KeyError, AttributeError, TypeError, binascii.Error) as exc:
        raise CursorUnreadable(
            f"the release_tag_sensor cursor cannot be read ({type(exc).__name__}: {str(exc)[:200]}). Nothing was "
            f"started and the cursor is unchanged. In the UI (Automation → release_tag_sensor) clear the cursor to "
            f"take a fresh first look (existing tags are recorded, not validated)") from None


def dump_cursor(cursor: TagCursor) -> str:
    older = b"".join(d.to_bytes(4, "big") for d in sorted(cursor.older))
    doc = {"v": 2, "pattern": cursor.pattern, "gen": cursor.generation, "tags": cursor.tags,
           "older": base64.b64encode(older).decode()}
    if cursor.truncated:
        doc["truncated"] = True
    return json.dumps(doc, separators=(",", ":"), sort_keys=True)


def remember(matching: dict[str, str], pattern: str, generation: int) -> TagCursor:
    ordered = sorted(matching, key=version_key)
    newest, rest = ordered[-CURSOR_FULL:], ordered[:-CURSOR_FULL]
    kept = rest[-CURSOR_HASHED:]
    return TagCursor(pattern=pattern, generation=generation, tags={t: matching[t] for t in newest},
                     older={_digest(t, matching[t]) for t in kept}, truncated=len(rest) > len(kept))


def new_releases(seen: TagCursor | None, current: dict[str, str], pattern: str, *,
                 run_existing: bool = False) -> tuple[list[Release], TagCursor, str | None]:
    """Releases to validate (oldest first), the cursor to keep, and a note worth showing (or None).

    On the first look (no cursor), and on the first look after ``tag_pattern`` changed, the tags
    already there are recorded and, unless ``run_existing``, nothing is started for them.
    """
    regex = re.compile(pattern)
    matching = {t: s for t, s in current.items() if regex.search(t)}
    # a first look starts the generations at the time, so that a cleared cursor never reuses an old run key
    generation = (seen.generation if seen else int(time.time())) + 1
    note = None
    known = len(seen.tags) + len(seen.older) if seen else 0
    if seen is not None and known and not matching and (seen.pattern in (None, pattern)):
        # an empty listing from a repository that had releases: a re-created or half-synced mirror, not the
        # deletion of every release; forgetting them would validate every one of them when they come back
        return [], seen, (f"the repository lists no tags matching {pattern!r} though {known} were known (an empty "
                          f"or re-created mirror?): cursor kept, nothing started")
    if seen is not None and seen.pattern is not None and seen.pattern != pattern:
        note = (f"tag_pattern changed from {seen.pattern!r} to {pattern!r}: recorded the {len(matching)} tag(s) it "
                f"matches now and started nothing for them")
        seen = None
        run_existing = False
    if seen is None and not run_existing:
        return [], remember(matching, pattern, generation - 1), note
    floor = min(seen.tags, key=version_key) if seen and seen.truncated and seen.tags else None
    fresh = [Release(t, s, generation) for t, s in matching.items()
             if not (seen and seen.knows(t, s))
             and (floor is None or t in seen.tags or version_key(t) > version_key(floor))]
    fresh.sort(key=lambda r: version_key(r.tag))
    return fresh, remember(matching, pattern, generation if fresh else generation - 1), note
