"""Redis for the cache: a connection whose failures read as what they are, and bulk writes at wire speed.

Errors name the server by host and port only: the URL may hold a password. Bulk writes pack a batch of
commands into one buffer (redis-py's ``pack_commands``), send it in one write and read the replies with the
hiredis parser: one round trip per batch, memory bounded by the batch. An error reply (``OOM command not
allowed`` when ``maxmemory`` is reached, say) fails that command only, and is counted, never hidden.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ops_project.common.errors import OpsError


class CacheError(OpsError):
    """Redis cannot be used: unreachable, a wrong password, a refused command."""


def where(url: str) -> str:
    parts = urlsplit(url)
    return f"Redis at {parts.hostname or '127.0.0.1'}:{parts.port or 6379}"


def connect(url: str, *, timeout: float = 10):
    """A client for ``url`` that answers PING, or a CacheError that says why not."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        client.ping()
    except redis.AuthenticationError:
        raise CacheError(f"{where(url)} refused the credentials in the URL (cache.redis_url_env): check the "
                         f"password (and user, for an ACL)") from None
    except redis.ResponseError as exc:
        text = str(exc)
        if "NOAUTH" in text or "WRONGPASS" in text or "AUTH" in text.upper():
            raise CacheError(f"{where(url)} needs a password the URL does not give (or refused it): put it in the "
                             f"URL, redis://:PASSWORD@host:port/0") from None
        raise CacheError(f"{where(url)} refused PING: {text}") from None
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise CacheError(f"{where(url)} is unreachable ({type(exc).__name__}): is it running, and is the address "
                         f"right?") from None
    except ValueError as exc:  # a URL redis-py cannot read
        raise CacheError(f"the Redis URL in cache.redis_url_env is not a redis:// URL ({exc})") from None
    return client


@dataclass
class WriteStats:
    sent: int = 0
    written: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)  # the first few, as Redis said them


class BulkWriter:
    """``set(key, value, ttl)`` buffered, flushed every ``batch`` commands in one round trip."""

    MAX_ERRORS = 5

    def __init__(self, client, batch: int = 1000):
        self._client, self._batch = client, batch
        self._pending: list[tuple] = []
        self.stats = WriteStats()

    def set(self, key: str, value: bytes, ttl: int) -> None:
        self._pending.append(("SET", key, value, "EX", ttl))
        if len(self._pending) >= self._batch:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        import redis

        commands, self._pending = self._pending, []
        pool = self._client.connection_pool
        conn = pool.get_connection()
        ok = False
        try:
            conn.send_packed_command(conn.pack_commands(commands), check_health=False)
            for _ in commands:
                self.stats.sent += 1
                try:
                    conn.read_response()
                    self.stats.written += 1
                except redis.ResponseError as exc:  # that command's error reply; the connection stays in step
                    self.stats.failed += 1
                    if len(self.stats.errors) < self.MAX_ERRORS:
                        self.stats.errors.append(str(exc))
            ok = True
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            raise CacheError(f"the connection to Redis broke during a bulk write after {self.stats.written} keys "
                             f"({type(exc).__name__}): the warm-up is incomplete") from None
        finally:
            if ok:
                pool.release(conn)
            else:
                conn.disconnect()
                pool.release(conn)

    def close(self) -> WriteStats:
        self.flush()
        return self.stats
