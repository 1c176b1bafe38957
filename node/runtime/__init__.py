"""asyncio and gRPC: the running node (SPEC §11).

- ``node``: the ``Node`` object, which wires the rest together and serves the servicers;
- ``commit``: the group commit, the node's single writer;
- ``outbound``: the outbox pump and one delivery stream per peer;
- ``inbound``: pipelining of incoming batches;
- ``control``: the control-message pump;
- ``due``, ``backoff``: the one polling loop and the one retry policy both pumps share;
- ``watcher``: agreement files that change;
- ``channels``, ``tasks``, ``clock``: outbound channels, background tasks, the wall clock;
- ``process``: the process entry point.
"""
