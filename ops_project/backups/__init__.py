"""Backups: snapshot engines, the codec stream, manifests and the catalog of a region, replication,
retention, restore, verification, the verified RPO and DR drills."""
