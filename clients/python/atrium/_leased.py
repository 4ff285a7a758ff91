"""Leased gets, an atrium extension of Queue: an item taken under a lease
is hidden from the other consumers until it is acked (gone, and done for
join()), nacked (back at the head of the queue, after an optional delay)
or its holder is gone; then another consumer gets it, with its
`deliveries` one higher. A queue made with max_deliveries moves an item
that comes back that often to its dead_letter queue.

Holders. With renew=True (the default) an item is the process's while it
lives, as a lock is:
- remotely the lease is the gateway's (a deadline), renewed at a third of
  `lease` by the same daemon thread that renews lock leases; when the
  process dies the renewals stop and the item comes back `lease` seconds
  later;
- locally the item is a hold of the taking thread in the store: the core
  gives it back the moment that thread dies (kill -9 included), and its
  deadline is set far away, since a live thread keeps it anyway.
With renew=False the lease is a plain visibility timeout on both
transports: the item comes back `lease` seconds after it was taken (or
last touched) unless it was settled.

Locally only the taking thread may settle its items (the core's rule for
process holds): another thread's ack raises AtriumError ENOTHELD.
"""
import os
import queue

from ._errors import AtriumError

DEFAULT_LEASE = 30.0
# A local renew=True item's deadline: far away (the core takes up to 1e9 s).
_FAR = 1e8


def default_lease(store):
    return (getattr(store._impl, "lease_ttl", None)
            or float(os.environ.get("ATRIUM_LEASE_TTL") or DEFAULT_LEASE))


class Leased:
    """An item taken by Queue.get_leased(): `item` (what was put),
    `deliveries` (times handed out, this one included), `receipt` (16 hex
    digits, as HTTP shows it), and ack(), nack(delay=0), touch(lease=None).
    As a context manager it acks when the block ends normally and nacks
    when it raises."""
    __slots__ = ("item", "deliveries", "lease", "_queue", "_receipt", "_renew",
                 "_hold", "_settled")

    def __init__(self, q, item, receipt, deliveries, lease, renew):
        self.item, self.deliveries, self.lease = item, deliveries, lease
        self._queue, self._receipt, self._renew = q, receipt, renew
        self._settled = False
        self._hold = None
        if renew and q._store.remote:
            from . import _remote_sync
            self._hold = _remote_sync.ItemHold(q._b, receipt, lease)
            _remote_sync.renewer().add(self._hold)

    @property
    def receipt(self):
        r = self._receipt
        return r if isinstance(r, str) else "%016x" % r

    def _settle(self, op, arg=None):
        if self._settled:
            raise AtriumError("ENOTHELD", "this item was settled already")
        if op != "touch":
            self._settled = True
            if self._hold is not None:
                from . import _remote_sync
                _remote_sync.renewer().remove(self._hold)
        unknown = self._queue._b.settle(op, [self._receipt], arg)
        if unknown:
            self._settled = True
            raise AtriumError(
                "ENOTHELD", "item %s of queue %r is no longer held: its lease ran "
                "out, it was settled, or (locally) another thread took it"
                % (self.receipt, self._queue.name))

    def ack(self):
        """Done with it: the item is gone (and done, for join())."""
        self._settle("ack")

    def nack(self, delay=0.0):
        """Gives it back: at the head of the queue, after delay seconds."""
        self._settle("nack", float(delay))

    def touch(self, lease=None):
        """Its lease now ends lease seconds from now (default: the one it
        was taken with); with renew=True this also becomes the renewals'
        period (locally such an item has no deadline to move: touch only
        checks that it is still held)."""
        lease = float(lease or self.lease)
        if not lease > 0:
            raise ValueError("lease must be > 0")
        local_renewed = self._renew and not self._queue._store.remote
        self._settle("touch", _FAR if local_renewed else lease)
        self.lease = lease
        if self._hold is not None:
            self._hold.ttl = lease

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if not self._settled:
            if exc_type is None:
                self.ack()
            else:
                self.nack()
        return False

    def __reduce__(self):
        raise TypeError("a leased item stays with the process that took it")

    def __repr__(self):
        return "<atrium Leased %r deliveries=%d receipt=%s%s>" % (
            self.item, self.deliveries, self.receipt,
            " settled" if self._settled else "")


def get_leased(q, max_, block, timeout, lease, renew):
    """Queue.get_leased's work: a list of 1..max_ Leased, or queue.Empty."""
    if q._closed:
        q._check_closed()
    if max_ < 1:
        raise ValueError("max must be >= 1")
    lease = float(lease) if lease is not None else default_lease(q._store)
    if not lease > 0:
        raise ValueError("lease must be > 0")
    core_lease = _FAR if renew and not q._store.remote else lease
    got = q._b.get_leased(max_, core_lease, timeout if block else 0)
    if not got:
        raise queue.Empty
    return [Leased(q, item, receipt, deliveries, lease, renew)
            for item, receipt, deliveries in got]


__all__ = ["Leased", "get_leased"]
