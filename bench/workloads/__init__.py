"""syncsvc-only workloads (stream latency, idle sockets, bulk publish): one async ``measure`` each, JSON-able result."""
