"""paxosd: fault-tolerant consensus you can run, use and learn from."""

__all__: list[str] = []
