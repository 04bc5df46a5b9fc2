"""Rollback: run the configured command with the tag to go back to, output captured (bounded)."""

from __future__ import annotations

import subprocess


def rollback(command: list[str], to_tag: str, timeout: float = 600) -> dict:
    try:
        proc = subprocess.run([*command, to_tag], capture_output=True, text=True, timeout=timeout)
        return {"to": to_tag, "exit_code": proc.returncode, "output": (proc.stdout + proc.stderr)[-4000:]}
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"to": to_tag, "exit_code": -1, "output": f"could not run {command[0]}: {exc}"}
