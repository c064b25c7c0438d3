"""The recording core (SPEC §3): the registry, its series (rollups, HDR histogram, raw
values), exact selection and percentile methods, and the monotonic clock.

The hot path (``record``, ``increment``) lives here and does constant, tiny work."""
