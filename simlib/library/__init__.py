"""Keeping the catalog current, the only code that writes it: the per-track pipeline, the
registry of analysis stages, worker processes, sync (a scan), the watcher, index rebuilds."""
