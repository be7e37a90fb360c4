"""The anycast lab: real BGP anycast, real latency and real withdraws in network namespaces.

``topology``, ``bird``, ``labconfig``, ``shape`` and ``announce`` are pure (tables in
tests/unit); ``netns``, ``links``, ``wire``, ``agent``, ``machine``, ``probe``,
``control``, ``report`` and ``measure`` are the shell that runs ip, tc, BIRD,
PostgreSQL and the edge nodes (``scripts/lab``).
"""
