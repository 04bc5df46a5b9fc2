"""Continuous protection of SQLite databases: Litestream replicates each database's WAL into every region, and
this package writes its configuration, starts it with a clean environment, reads how far each replica has got
(the current RPO), writes the marker rows that prove a restore to a moment, and restores to a moment.

No Dagster here: the sensor, the restore test and the CLI all call these functions.
"""
