"""The edge twin: what the agent knows about the machine, on a small disk, after a power cut.

``store`` (SignalStore, TwinConfig: latest values, bounded rings, durability, disk full),
``windows`` (numpy rings for the detectors), ``rollups`` and ``rollup_buffer`` (per-minute
min/max/mean/last/count), ``layout`` and ``queries`` (the SQLite file), ``status``
(staleness, write health), ``commands`` and ``export`` (``edge-agent twin ...``).
"""
