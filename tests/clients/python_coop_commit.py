#!/usr/bin/env python3
"""One cooperative-sticky group member with kafka-python, a Kafka client NOT built on
librdkafka, that commits what it processed when partitions are revoked (KIP-429).

Usage: python_coop_commit.py BOOTSTRAP TOPIC GROUP

The member subscribes to TOPIC in GROUP with kafka-python's CooperativeStickyAssignor,
manual commits only. Each record it processes is printed as a JSON line
{"p": partition, "o": offset}. Its rebalance listener (an AsyncConsumerRebalanceListener, since
kafka-python runs listeners on its IO thread) commits the positions it processed of every
revoked partition and prints {"commit": "ok"} or {"commit": "failed", "error": ...}.

kafka-python calls on_partitions_revoked after it has already applied the new assignment, from
its IO thread, while the main thread may hold records it polled before: so the main thread
processes a record only while its partition is still owned (a lock orders the two), which is
what Java's consumer guarantees by running the callback inside poll().

A line "leave" on stdin (or its end) makes the member stop processing, commit everything it
processed, close (LeaveGroup) and print {"left": true}. kafka-python does not send a commit while
it is itself rejoining a rebalance (RebalanceInProgressError, raised before anything is sent, as
Java's consumer does): the member then prints {"commit": "deferred"}, polls so that the rebalance
completes, and commits again, as kafka-python's message advises.

kafka-python 3.0.12 can abandon a join it completed (see Member.stalled_join): the member then
prints {"stalled_join": true, ...} and asks to rejoin. SPATE_PY_LOG_DIR, if set, receives
kafka-python's debug log, one file per member process.
"""

import json
import logging
import os
import sys
import threading
import time

from kafka.errors import RebalanceInProgressError

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import AsyncConsumerRebalanceListener
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.structs import OffsetAndMetadata

OUT = threading.Lock()


def out(doc):
    with OUT:
        sys.stdout.write(json.dumps(doc) + "\n")
        sys.stdout.flush()


class Member:
    def __init__(self, bootstrap, topic, group):
        self.lock = threading.Lock()
        self.leaving = False
        self.owned = set()
        # TopicPartition -> the offset after the last record processed
        self.processed = {}
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            client_id="spate-py-coop",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            partition_assignment_strategy=[CooperativeStickyAssignor],
            session_timeout_ms=10000,
            heartbeat_interval_ms=300,
            max_poll_records=50,
        )
        self.consumer.subscribe([topic], listener=Listener(self))

    def offsets_of(self, partitions):
        return {
            tp: OffsetAndMetadata(self.processed[tp], "", -1)
            for tp in partitions
            if tp in self.processed
        }

    def process(self, batches):
        with self.lock:
            if self.leaving:
                return
            for tp, records in batches.items():
                if tp not in self.owned:
                    continue  # revoked after the poll: its new owner reads these
                for r in records:
                    out({"p": tp.partition, "o": r.offset})
                    self.processed[tp] = r.offset + 1

    def stalled_join(self):
        """Whether kafka-python 3.0.12 abandoned a join it had completed. Its join loop
        (BaseCoordinator.join_group_async) runs while need_rejoin() holds and, when
        consumer.poll()'s timeout expires first, leaves the JoinGroup/SyncGroup task in flight
        for the next poll to collect. A leader whose rejoin was asked for by a topic metadata
        change (need_rejoin() is then true only while its assignment snapshot differs from the
        metadata) makes the two equal when it computes the assignment, before its SyncGroup: a
        poll timeout during that SyncGroup leaves need_rejoin() false, so no later poll collects
        the finished task. The member then stays "rebalancing" with heartbeats off and its
        assignment never applied, sends nothing more to the coordinator, and is expired after
        session_timeout_ms, as Kafka's coordinator would. The state, rejoining while no rejoin
        is needed, lasts only within one poll otherwise."""
        c = self.consumer._coordinator
        return c.rejoining and not c.need_rejoin()

    def run(self, leave):
        stalled_since = None
        while not leave.is_set():
            self.process(self.consumer.poll(timeout_ms=50))
            if not self.stalled_join():
                stalled_since = None
            elif stalled_since is None:
                stalled_since = time.monotonic()
            elif time.monotonic() - stalled_since > 1.0:
                # Asking to rejoin makes the next poll send a new JoinGroup (a finished join
                # task is not reused); the coordinator rebalances as for any rejoin.
                c = self.consumer._coordinator
                out({"stalled_join": True, "state": str(c.state),
                     "generation": c._generation.generation_id,
                     "join_task_done": None if c._join_task is None else c._join_task.is_done,
                     "rejoining": c.rejoining})
                c.request_rejoin()
                stalled_since = None
        with self.lock:
            self.leaving = True
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            # What is still owned: a revocation during the poll below commits its own part.
            with self.lock:
                offsets = self.offsets_of(self.owned)
            if not offsets:
                break
            try:
                self.consumer.commit(offsets)
                out({"commit": "ok", "where": "leave"})
                break
            except RebalanceInProgressError:
                out({"commit": "deferred", "where": "leave"})
                self.consumer.poll(timeout_ms=100)
            except Exception as e:  # noqa: BLE001 - reported, the test counts it
                out({"commit": "failed", "where": "leave", "error": repr(e)})
                break
        with self.lock:
            self.owned.clear()
        self.consumer.close(autocommit=False)
        out({"left": True})


class Listener(AsyncConsumerRebalanceListener):
    def __init__(self, member):
        self.member = member

    async def on_partitions_revoked(self, revoked):
        m = self.member
        with m.lock:
            offsets = m.offsets_of(revoked)
            m.owned -= set(revoked)
            for tp in revoked:
                m.processed.pop(tp, None)
        if not offsets:
            return
        try:
            # The awaitable form of commit(): a blocking call on the IO thread is refused.
            await m.consumer._coordinator._commit_offsets_sync_async(offsets, 10000)
            out({"commit": "ok", "where": "revoke"})
        except Exception as e:  # noqa: BLE001 - reported, the test counts it
            out({"commit": "failed", "where": "revoke", "error": repr(e)})

    async def on_partitions_assigned(self, assigned):
        with self.member.lock:
            self.member.owned |= set(assigned)
        out({"assigned": sorted(tp.partition for tp in assigned)})


def main():
    bootstrap, topic, group = sys.argv[1:4]
    # SPATE_PY_LOG_DIR: kafka-python's own debug log (joins, syncs, heartbeats, commits), one
    # file per member process, to follow a rebalance from the client's side.
    log_dir = os.environ.get("SPATE_PY_LOG_DIR")
    if log_dir:
        logging.basicConfig(
            filename=os.path.join(log_dir, "member-%d.log" % os.getpid()),
            level=logging.DEBUG,
            format="%(asctime)s.%(msecs)03d %(threadName)s %(name)s %(levelname)s %(message)s",
            datefmt="%H:%M:%S",
        )
    member = Member(bootstrap, topic, group)
    leave = threading.Event()

    def watch_stdin():
        for line in sys.stdin:
            if line.strip() == "leave":
                break
        leave.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    member.run(leave)


if __name__ == "__main__":
    main()
