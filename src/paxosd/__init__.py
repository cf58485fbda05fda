"""paxosd: fault-tolerant consensus you can run, use and learn from.

from paxosd import Client
client = Client()            # the local cluster started by `paxosd up`
client.put("x", 1)
"""

from paxosd import client as _client
from paxosd.client import *  # noqa: F403 - the client's public names are the package's

__all__ = _client.__all__
