"""Where the registry's commands are agreed on: the `skydns.cluster.ICluster`
implementations.  `raft` (the default) replicates them with SkyDNS's own Raft
(``skydns.raft``) over the registry adapter in `machine`; `etcd`
(``--store etcd``) keeps them in an existing etcd instead."""
