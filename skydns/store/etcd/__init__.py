"""The registry in an existing etcd (SPEC.md §10, ``--store etcd``): so far
the client of etcd's v3 JSON gateway (`client`) the store is built on."""
