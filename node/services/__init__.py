"""What a node does, as plain functions over a database session and the node state (SPEC §11).

No gRPC and no asyncio here: the servicers in ``node.rpc`` translate wire messages and
call these through the runtime's group commit (``node.runtime``), which runs each one as
a job on the node's single database thread and commits before anyone hears back. Every
function that changes state appends its audit entries in the same transaction as the
change (SPEC §11.4); the caller commits. ``now`` is always passed in.

- ``state``: the node's identity, keys and in-memory indexes; the at-rest key;
- ``egress``: origination, correction and re-share;
- ``ingress``: verifying, deciding and recording envelopes that arrive;
- ``delivery``: what is due, transport failures, settling receipts;
- ``control``: durable control messages;
- ``consent``: consent requests and decisions;
- ``notices``: recall, correction and consent revocation;
- ``holdings``: what the node holds, and the desk's reads;
- ``federation``: start-up and agreement updates.
"""
