"""Publishing: sequenced packets per channel → one send path → the network.

``Publisher`` owns sequence numbers and packet framing; ``SendPath`` owns which transport sends
them (and falls back between transports); transports put datagrams on the wire.
"""
