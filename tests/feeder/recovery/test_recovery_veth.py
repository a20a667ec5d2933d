"""Re-requests across two namespaces joined by veth (root; runs in CI): loss on both lines is
recovered, what is older than the buffer is reported, a flood is rate-limited, garbage is
counted. The loss is real: the kernel drops the chosen packets at the receiver's sockets."""

from __future__ import annotations

import asyncio
import os
import threading

from feeder.listen.dropfilter import DropRule
from feeder.net.topology import TwoHostTopology
from feeder.publish.ab import line_b
from feeder.publish.channels import ChannelMap
from feeder.recovery.protocol import encode_request
from feeder.recovery.server import RecoveryLimits
from tests.feeder.recovery.harness import (
    FeederSide,
    lost,
    receiver,
    run_until_settled,
    same_books,
    topo,
)

__all__ = ["topo"]  # the fixture

DROP_A, DROP_B = DropRule(6, 2), DropRule(9, 2)  # both lines: first_seq ≡ 2 (mod 18)


def test_loss_on_both_lines_is_recovered_by_re_request(topo: TwoHostTopology) -> None:
    a = ChannelMap.multi("239.81.0.1", 43001, 2)
    b = line_b(a, "239.82.0.1", 43001)

    async def run() -> None:
        feed = FeederSide(topo, a, b)
        await feed.start()
        rx = receiver(topo, a, b, recovery=feed.address, drop_a=DROP_A, drop_b=DROP_B)
        try:
            sent = feed.publish(120, a.channels)
            assert feed.pub.close()
            await run_until_settled(rx)
            s = rx.summary()
            packets = [p for ch in a.channels for p in feed.packets(ch)]
            both = lost(packets, DROP_A, DROP_B)
            assert both > 0 and lost(packets, DROP_A) > both  # the rules did bite
            assert s["ab"]["lost_on_both_messages"] == both
            assert s["ab"]["lines"]["a"]["lost_messages"] == lost(packets, DROP_A)
            assert s["gap_messages"] == both  # gaps only where both lines lost it ...
            r = s["recovery"]
            assert r["recovered_messages"] == both  # ... and re-requests filled them all
            assert r["unrecoverable_messages"] == 0
            assert s["missing_messages"] == 0 and s["received"] == sent
            assert s["duplicates"] == 0
            assert feed.service.counters.served_messages >= both
            assert rx.books is not None and same_books(rx.books, feed.books())
        finally:
            rx.close()
            feed.close()

    asyncio.run(run())


def test_without_a_line_b_recovery_alone_fills_the_gaps(topo: TwoHostTopology) -> None:
    a = ChannelMap.single("239.83.0.1", 43101, 3)

    async def run() -> None:
        feed = FeederSide(topo, a, None)
        await feed.start()
        rx = receiver(topo, a, recovery=feed.address, drop_a=DropRule(5, 3))
        try:
            sent = feed.publish(80, a.channels)
            assert feed.pub.close()
            await run_until_settled(rx)
            s = rx.summary()
            packets = [p for ch in a.channels for p in feed.packets(ch)]
            assert s["gap_messages"] == lost(packets, DropRule(5, 3)) > 0
            assert s["recovery"]["recovered_messages"] == s["gap_messages"]
            assert s["missing_messages"] == 0 and s["received"] == sent
            assert rx.books is not None and same_books(rx.books, feed.books())
        finally:
            rx.close()
            feed.close()

    asyncio.run(run())


def test_data_older_than_the_buffer_is_reported_unrecoverable(topo: TwoHostTopology) -> None:
    a = ChannelMap.multi("239.84.0.1", 43201, 1)
    b = line_b(a, "239.85.0.1", 43201)

    async def run() -> None:
        big = FeederSide(topo, a, b)  # not started: only to know every packet sent
        big.close()
        feed = FeederSide(topo, a, b, buffer_packets=16)
        await feed.start()
        rx = receiver(topo, a, b, recovery=feed.address, drop_a=DROP_A, drop_b=DROP_B)
        try:
            # Everything is sent before the receiver reads a thing: by the time it asks, the
            # early holes have left the feeder's 16-packet buffer.
            sent = feed.publish(150, a.channels)
            big.publish(150, a.channels)
            assert feed.pub.close()
            await run_until_settled(rx)
            s = rx.summary()
            packets = big.packets(1)
            oldest = feed.store[1].oldest_seq
            assert oldest > 1
            both = lost(packets, DROP_A, DROP_B)
            gone = lost([p for p in packets if p[0].first_seq < oldest], DROP_A, DROP_B)
            assert 0 < gone < both
            r = s["recovery"]
            assert r["unrecoverable"] == {"older_than_buffer": gone}
            assert r["recovered_messages"] == both - gone
            assert s["missing_messages"] == gone  # still missing, and said so
            assert s["received"] == sent - gone
            assert feed.service.counters.not_available >= 1
        finally:
            rx.close()
            feed.close()

    asyncio.run(run())


def test_a_flood_of_re_requests_is_rate_limited_and_publishing_goes_on(
    topo: TwoHostTopology,
) -> None:
    a = ChannelMap.multi("239.86.0.1", 43301, 2)
    limits = RecoveryLimits(requester_rate=100, requester_burst=50, total_rate=200, total_burst=100)

    async def run() -> None:
        feed = FeederSide(topo, a, None, limits=limits)
        await feed.start()
        rx = receiver(topo, a)  # a well-behaved receiver that loses nothing
        flooder = topo.b.socket()
        stop = threading.Event()
        flooded = [0]

        def flood() -> None:
            # A misbehaving receiver: valid requests for the whole buffer, as fast as it can.
            req = encode_request(1, feed.pub.session_id, 1, 100_000, 1)
            while not stop.is_set():
                try:
                    flooder.sendto(req, feed.address)
                    flooded[0] += 1
                except OSError:
                    pass  # a full socket buffer: keep going

        thread = threading.Thread(target=flood, name="flooder")
        thread.start()
        try:
            sent = 0
            for _ in range(40):  # the feeder keeps publishing while the flood goes on
                sent += feed.publish(5, a.channels)
                rx.poll(0)
                await asyncio.sleep(0.005)
            stop.set()
            thread.join()
            assert feed.pub.close()
            await run_until_settled(rx)
            s = rx.summary()
            assert s["received"] == sent and s["gaps"] == 0
            c = feed.service.counters
            assert flooded[0] > 1000 and c.requests > 1000
            assert c.refused_rate > 0.9 * c.requests
            # The answered ones fit the budget: burst plus the rate over the flood's duration.
            assert c.served + c.not_available <= 50 + 100 * 5
        finally:
            stop.set()
            flooder.close()
            rx.close()
            feed.close()

    asyncio.run(run())


def test_bad_requests_are_counted_and_never_answered(topo: TwoHostTopology) -> None:
    a = ChannelMap.multi("239.87.0.1", 43401, 1)

    async def run() -> None:
        feed = FeederSide(topo, a, None)
        await feed.start()
        feed.publish(5, a.channels)
        client = topo.b.socket()
        client.settimeout(2)
        try:
            good = encode_request(1, feed.pub.session_id, 1, 3, 9)
            garbage = [
                b"",
                b"MDRQ",
                good[:-1],
                good + b"\0",
                b"XDRQ" + good[4:],
                good[:4] + b"\x07" + good[5:],
                os.urandom(32),
                os.urandom(1400),
            ]
            for g in garbage:
                client.sendto(g, feed.address)
            client.sendto(good, feed.address)
            reply = await asyncio.get_running_loop().run_in_executor(None, client.recv, 2048)
            assert reply[:4] == b"MDFW"  # the packet came back: the server still serves
            c = feed.service.counters
            assert sum(c.malformed.values()) == len(garbage)
            assert c.malformed["bad_length"] == 5 and c.malformed["bad_version"] == 1
            assert c.requests == 1 and c.served == 1
        finally:
            client.close()
            feed.close()

    asyncio.run(run())
