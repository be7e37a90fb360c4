"""The anycast lab: real BGP anycast, real latency and real withdraws in network namespaces.

``topology``, ``bird``, ``labconfig`` and ``shape`` are pure (tables in tests/unit);
``netns``, ``wire``, ``agent``, ``machine``, ``probe`` and ``control`` are the shell that
runs ip, BIRD, PostgreSQL and the edge nodes (``scripts/lab``).
"""
