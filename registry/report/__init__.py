"""The Report (SPEC §7): :mod:`registry.report.summary` builds ``result_summary.json``
from a final snapshot; :mod:`registry.report.upstream` reads upstream's own summaries."""
