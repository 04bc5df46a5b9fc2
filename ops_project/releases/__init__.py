"""Releases: Git tags and the sensor's cursor (``tags``), deploy validation (``validate``), the
baseline a release is compared with (``baseline``) and the rollback (``rollback``)."""
