"""One database node: its Patroni/etcd configuration rendered from ``patroni/`` (EC2 and the lab)."""
