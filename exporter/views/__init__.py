"""Terminal views (SPEC §9): the live view and its display loop, the Report view,
the verdict panel and the number formats they share. They render what snapshots and
reports say; they never compute a metric."""
