"""Running edge as a cluster: a private PostgreSQL control plane and several nodes."""
