"""Watching names: changes pushed to clients with an exact per-pattern index
(SPEC.md §6): the hub (`hub`), what a change means for a pattern
(`changes`), and the two ways out, long polls and Server-Sent Events (`streams`)."""
