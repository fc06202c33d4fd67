from .base import Transport
from .inmemory import DEFAULT_BUS, InMemoryBus, InMemoryTransport
from .redis_transport import RedisTransport

__all__ = ["DEFAULT_BUS", "InMemoryBus", "InMemoryTransport", "RedisTransport", "Transport"]
