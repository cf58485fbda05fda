"""etcd's v3 API, served by paxosd's own state machine: the JSON gateway (gateway.py) on the
node's HTTP port, the mapping of etcd's JSON to paxosd's key-value types (wire.py), and
etcd's errors (errors.py). A gRPC server would reuse wire's types and errors' codes."""
