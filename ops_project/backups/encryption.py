"""age encryption keys: recipients (public keys, for backups) and identities (secret keys, for restores).

Keys come from environment variables or files, never from the configuration file; errors name the
source and never repeat a key.
"""

from __future__ import annotations

import hashlib

import pyrage

from ops_project.common.errors import EncryptionError


def parse_recipients(text: str, *, source: str) -> list:
    """Parse age recipients (one per line or comma-separated, ``#`` comments allowed)."""
    items = [part.strip() for line in text.splitlines() for part in line.split("#", 1)[0].split(",")]
    items = [item for item in items if item]
    if not items:
        raise EncryptionError(f"{source} holds no age recipient: give at least one public key (age1...)")
    recipients = []
    for item in items:
        try:
            recipients.append(pyrage.x25519.Recipient.from_str(item))
        except Exception:
            shown = item[:12] + "…" if len(item) > 12 else item
            raise EncryptionError(f"{source}: {shown!r} is not an age X25519 recipient (age1...)") from None
    return recipients


def recipient_fingerprint(recipient) -> str:
    """What the manifest records of a recipient: a short hash, never the key."""
    return hashlib.sha256(str(recipient).encode()).hexdigest()[:16]


def parse_identities(text: str, *, source: str) -> list:
    """Parse age identities (the secret key lines age-keygen writes; ``#`` lines ignored)."""
    items = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not items:
        raise EncryptionError(f"{source} holds no age identity (the secret key line age-keygen writes)")
    try:
        return [pyrage.x25519.Identity.from_str(item) for item in items]
    except Exception:
        raise EncryptionError(f"{source} does not hold a valid age identity "
                              f"(the secret key line age-keygen writes)") from None
