"""Helpers of scripts/bench: server configurations and the report."""
