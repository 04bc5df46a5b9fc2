"""What to warm over HTTP: the availability URLs of the busiest tenants and services (by bookings in the last
30 days), the configured URLs, a sitemap's (an index of sitemaps and gzip included) and the most requested
pages of an access log, each once.
"""

from __future__ import annotations

import gzip
import re
import sqlite3
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from ops_project.cache.redis_client import CacheError

_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
MAX_SITEMAPS = 50  # an index of indexes that never ends is cut here


def busiest(con: sqlite3.Connection, top: int, days: list[date], *, now: datetime | None = None) -> list[str]:
    """Availability paths of the ``top`` tenant × service pairs with the most bookings made in the last 30
    days, for each of ``days``: the pages the morning's customers open first."""
    if top <= 0:
        return []
    since = ((now or datetime.now(UTC)) - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    pairs = con.execute(
        "SELECT t.slug, a.service_id, count(*) AS n FROM appointments a JOIN tenants t ON t.id = a.tenant_id "
        "WHERE a.created_at >= ? GROUP BY t.slug, a.service_id ORDER BY n DESC, t.slug, a.service_id LIMIT ?",
        (since, top)).fetchall()
    if len(pairs) < top:  # a quiet month: fill with the busiest of all time, then any service
        pairs += [p for p in con.execute(
            "SELECT t.slug, s.id, (SELECT count(*) FROM appointments a WHERE a.service_id = s.id) AS n "
            "FROM services s JOIN tenants t ON t.id = s.tenant_id ORDER BY n DESC, t.slug, s.id LIMIT ?",
            (top,)).fetchall() if (p[0], p[1]) not in {(q[0], q[1]) for q in pairs}][: top - len(pairs)]
    return [f"/tenants/{slug}/availability?date={d.isoformat()}&service_id={sid}"
            for slug, sid, _n in pairs for d in days]


def parse_sitemap(data: bytes, where: str) -> tuple[list[str], list[str]]:
    """(page URLs, child sitemap URLs) of one sitemap or sitemap index; gzip is read whatever the name."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise CacheError(f"sitemap {where} is not valid gzip ({exc})") from None
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        head = data[:80].decode("utf-8", "replace")
        raise CacheError(f"sitemap {where} does not parse as XML ({exc}); it starts {head!r}") from None
    tag = root.tag.removeprefix(_NS)
    locs = [el.text.strip() for el in root.iter(f"{_NS}loc") if el.text and el.text.strip()]
    if tag == "sitemapindex":
        return [], locs
    if tag == "urlset":
        return locs, []
    raise CacheError(f"sitemap {where} is a <{tag}>, not a <urlset> or <sitemapindex>")


def same_site(url: str, base_url: str) -> str | None:
    """``url`` as a path under ``base_url`` (the CDN), or None when it points elsewhere."""
    parts, base = urlsplit(urljoin(base_url, url)), urlsplit(base_url)
    if (parts.scheme, parts.netloc) != (base.scheme, base.netloc):
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


def dedupe(urls: list[str], limit: int) -> tuple[list[str], int]:
    """Each URL once, in order, at most ``limit``; how many were dropped as repeats or over the limit."""
    seen, out = set(), []
    for u in urls:
        if u not in seen:
            seen.add(u)
            out.append(u)
    return out[:limit], len(urls) - len(out[:limit])


_REQUEST = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3}) ')


def access_log_top(path: str | Path, top: int) -> list[str]:
    """The ``top`` most requested paths of a combined-format access log (GET answered 200 only: what a cache
    can serve), most requested first. A log with lines but no request in them is an error, never an empty
    list that reads as "nothing to warm"."""
    from collections import Counter

    path = Path(path)
    if not path.is_file():
        raise CacheError(f"access log {path} (cache.http.access_log) does not exist")
    counts: Counter[str] = Counter()
    lines = 0
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", errors="replace") as fh:
        for line in fh:
            lines += 1
            m = _REQUEST.search(line)
            if m and m["method"] == "GET" and m["status"] == "200":
                counts[m["path"]] += 1
    if lines and not counts:
        raise CacheError(f"access log {path}: none of its {lines} lines is a request in the combined log format "
                         f"(\"GET /path HTTP/1.1\" 200 …)")
    return [p for p, _n in counts.most_common(top)]
