"""The registry in an existing etcd (SPEC.md §10, ``--store etcd``,
docs/etcd.md): `cluster` is the `skydns.cluster.ICluster`, over a local copy
(`mirror`, `ttls`), writes as transactions (`writes`), the callback sender's
election (`election`), the keys (`layout`), and etcd's v3 JSON gateway
(`client`); `settings` checks the options."""
