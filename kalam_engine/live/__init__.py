"""Live queries: subscriptions to one table's rows, fed from the write path after commit.

Providers hold no subscription state: the :class:`LiveRegistry` does, and hooks into a
table's store only while someone subscribes to it."""

from kalam_engine.live.events import LiveEvent
from kalam_engine.live.registry import LiveRegistry
from kalam_engine.live.sql import LiveQuery, SubscribeStatement, parse_live_query
from kalam_engine.live.subscription import Subscription

__all__ = ["LiveEvent", "LiveQuery", "LiveRegistry", "SubscribeStatement", "Subscription",
           "parse_live_query"]
