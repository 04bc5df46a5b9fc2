"""Rollback: run the configured command with the tag to go back to.

The command gets a minimal environment (``PATH``, ``HOME``, ``LANG`` and the variables
``releases.rollback_env`` names), runs in its own process group that is killed whole at the timeout
(a child left holding its output cannot hang us), and its output is scrubbed of every secret value
before it is returned to be stored or shown.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterable

from ops_project.common.scrub import scrub

BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")
OUTPUT_LIMIT = 4000


def rollback(command: list[str], to_tag: str, *, timeout: float = 600, env_names: Iterable[str] = (),
             secrets: Iterable[str] = ()) -> dict:
    """{"to", "exit_code" (-1: could not run or timed out), "timed_out", "output" (scrubbed, bounded)}."""
    env = {k: os.environ[k] for k in (*BASE_ENV, *env_names) if k in os.environ}
    try:
        proc = subprocess.Popen([*command, to_tag], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    except OSError as exc:
        return {"to": to_tag, "exit_code": -1, "timed_out": False,
                "output": scrub(f"could not run {command[0]}: {exc}", secrets)}
    timed_out = False
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole group: children holding the pipe too
        except ProcessLookupError:
            pass
        out, _ = proc.communicate()
    text = out.decode(errors="replace")[-OUTPUT_LIMIT:]
    if timed_out:
        text += f"\n(killed after {timeout:.0f}s: the rollback did not finish)"
    return {"to": to_tag, "exit_code": -1 if timed_out else proc.returncode, "timed_out": timed_out,
            "output": scrub(text, secrets)}
