"""The Prometheus/OpenMetrics mirror (SPEC §8): naming, fixed buckets, the collector,
the exposition cache, the bridge from a snapshot stream, the mirror and the Pushgateway.

It only reflects snapshots the registry built; nothing here decides a number."""
