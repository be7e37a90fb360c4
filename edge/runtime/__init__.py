"""The I/O shell: the daemon's lifecycle, listeners, timers, the store, metrics."""
