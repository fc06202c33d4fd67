"""Redis PUBLISH: a whole frame's messages in ONE command with two arguments.

Measured here for a boundary burst of 150 candles x 3 channels: a redis-py pipeline took 19 ms (it parses
each of the 450 replies in Python, ~35 µs each); a Lua script given 900 arguments still took 5 ms (redis-py
packs arguments in Python). So the script gets two arguments: a spec, ``len,channel,channel,...;`` per
payload, and every payload concatenated; it PUBLISHes each payload on its channels. One command, one
reply, each payload sent once, and the connection (TLS, ACL users, passwords, reconnects) is redis-py's.
Channel names never contain ``,`` or ``;`` (see ``keys.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis

from ...redact import redact_url

_PUBLISH_ALL = """
local blob, pos, sent = ARGV[2], 1, 0
for spec in string.gmatch(ARGV[1], '[^;]+') do
  local len = nil
  local payload = nil
  for field in string.gmatch(spec, '[^,]+') do
    if len == nil then
      len = tonumber(field)
      payload = string.sub(blob, pos, pos + len - 1)
      pos = pos + len
    else
      redis.call('PUBLISH', field, payload)
      sent = sent + 1
    end
  end
end
return sent
"""


class RedisTransport:
    name = "redis"

    def __init__(self, url: str, db: int | None = None) -> None:
        self.url = url
        self.db = db
        self._client: aioredis.Redis | None = None
        self._publish_all = None

    def describe(self) -> str:
        return redact_url(self.url) + (f" db={self.db}" if self.db is not None else "")

    async def connect(self) -> None:
        kwargs = {"db": self.db} if self.db is not None else {}
        self._client = aioredis.Redis.from_url(self.url, **kwargs)
        await self._client.ping()
        self._publish_all = self._client.register_script(_PUBLISH_ALL)

    async def publish_many(self, messages: Sequence[tuple[Sequence[str], bytes]]) -> None:
        assert self._publish_all is not None, "connect() first"
        spec = ";".join(f"{len(payload)},{','.join(channels)}" for channels, payload in messages)
        await self._publish_all(args=[spec, b"".join(payload for _, payload in messages)])

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
