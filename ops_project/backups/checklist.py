"""What a restore verification checks: each check's name, whether it blocks, and what it proves.

Apart from ``verify`` so that the Dagster definitions (which declare one asset check per entry) load without
the restore machinery.
"""

CHECKS = {
    # name: (blocking, what it proves)
    "stored_sha256": (True, "the stored bytes are the bytes the backup wrote"),
    "plaintext_sha256": (True, "decrypting and decompressing gives back exactly the snapshot"),
    "engine_integrity": (True, "the database engine finds the restored database sound"),
    "schema_fingerprint": (True, "tables, columns and indexes are those of the snapshot"),
    "row_counts": (True, "every table has as many rows as the manifest says"),
    "content_checksums": (True, "every table's content checksum matches the manifest"),
    "booking_invariants": (True, "the booking rules' counts (double-booked staff, appointments and payments "
                                 "referencing real rows) are those the live database had at snapshot time"),
    "live_data_invariants": (False, "the live database itself kept the booking rules when the snapshot was taken"),
    "rto_within_objective": (False, "restore plus checks fit in the RTO objective"),
}
