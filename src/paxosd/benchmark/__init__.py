"""`paxosd bench`: paxosd and its peers (etcd, ZooKeeper, PySyncObj) measured in one run."""
