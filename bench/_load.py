"""A small HTTP/1.1 load generator: K keep-alive connections sending prepared requests.

Plain asyncio streams rather than httpx: the benchmark measures the servers, and on a
two-core machine an httpx client would be the bottleneck well before a bare endpoint is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class LoadResult:
    sent: int
    ok: int
    statuses: dict[int, int]
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(int(len(ordered) * fraction), len(ordered) - 1)] if ordered else 0.0


def post_request(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _connection(
    port: int,
    requests: list[bytes],
    statuses: dict[int, int],
    latencies: list[float],
    schedule: list[float] | None,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for index, request in enumerate(requests):
            if schedule is not None:
                await asyncio.sleep(max(0.0, schedule[index] - time.perf_counter()))
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()
        await writer.wait_closed()


async def drive(
    port: int, requests: Sequence[bytes], connections: int, rate: float | None = None
) -> LoadResult:
    """Send every request, spread round-robin over `connections`, one in flight on each: as
    fast as answers come, or paced to `rate` requests a second in all (the n-th request is
    due n/rate seconds after the start; a late answer delays only its own connection)."""
    shares = [list(requests[index::connections]) for index in range(connections)]
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    started = time.perf_counter()
    schedules: list[list[float] | None] = [
        [started + (index + k * connections) / rate for k in range(len(share))] if rate else None
        for index, share in enumerate(shares)
    ]
    await asyncio.gather(
        *(
            _connection(port, share, statuses, latencies, schedule)
            for share, schedule in zip(shares, schedules, strict=True)
        )
    )
    seconds = time.perf_counter() - started
    ok = sum(count for status, count in statuses.items() if 200 <= status < 300)
    return LoadResult(len(requests), ok, statuses, seconds, latencies)
