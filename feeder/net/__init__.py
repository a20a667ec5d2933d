"""Socket and topology layer of the feeder.

- ``topology``: two network namespaces joined by a veth pair (the "two hosts" of a demo/test),
  stale-leftover cleanup, and ``topology_support()`` for the loopback fallback decision.
- ``netns``: enter a named network namespace from this process (per thread), create sockets
  there, or run child processes there (``nsexec`` is the ``python -m`` entry point for that).
- ``mcast``: multicast sender/receiver sockets with buffer-size read-back reports.
- ``mmsg``: ``sendmmsg``/``recvmmsg`` batching over preallocated buffers, with a plain fallback.
- ``timestamps``: ``SO_TIMESTAMPING`` constants, enabling, and RX/TX timestamp parsing.
- ``snmp``: ``/proc/net/snmp`` counters (per namespace), snapshots and diffs.
- ``validate``, ``libc``: input checks and the shared ctypes libc handle.
"""
