"""Command-line entry points: ``edge`` (daemon and local commands) and ``edgectl``."""
