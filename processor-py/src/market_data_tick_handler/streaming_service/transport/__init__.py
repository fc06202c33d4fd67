from .base import Entry, PublishError, PublishResult, StreamTarget, Transport, parse_entry_id
from .inmemory import DEFAULT_BUS, InMemoryBus, InMemoryTransport
from .redis_transport import RedisTransport

__all__ = [
    "DEFAULT_BUS",
    "Entry",
    "InMemoryBus",
    "InMemoryTransport",
    "PublishError",
    "PublishResult",
    "RedisTransport",
    "StreamTarget",
    "Transport",
    "parse_entry_id",
]
