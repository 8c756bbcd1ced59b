"""The local HA lab: three etcd + Patroni + PostgreSQL nodes on loopback, from the production templates."""
