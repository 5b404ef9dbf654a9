#!/usr/bin/env python3
"""slow_clients.py — the ill-behaved side of bench/bench_soak.sh.

N connections to the server from A loopback addresses (FIRST, FIRST+1, ...;
Linux routes all of 127/8 to lo), each one trickling a byte every INTERVAL
seconds for as long as the server keeps it:
  even clients: a GET whose headers never end ("X-Slow: aaaa..."), which the
                server should cut at --header-timeout;
  odd clients:  a POST predict whose headers are whole but whose body (of
                the Content-Length declared) comes a byte at a time, which
                the server should cut at --min-body-rate.
A client that loses its connection opens another one after 0.1-0.5 s.

With --probe-every S, one well-behaved visitor as well: every S seconds a
new connection from --probe-from (127.0.0.1) asks GET /api/health with
"Connection: close" and waits up to 10 s for a 200 — what a new browser
sees, which wrk's keep-alive connections, opened once, do not.

The counters are written as JSON to --stats every half second (and at
exit): connects, connect_errors, open, cut_headers, cut_body (closed by the
server after at least a second), closed_at_once (closed within a second of
connecting: refused), answered (the server sent a reply before closing,
counted by status line in "statuses"), held_s (sum/max of the seconds the
cut connections were held), probes ([time, ms or the failure] per probe). The bench script diffs two snapshots to count
a phase. Stops after --seconds, or on SIGTERM/SIGINT.
"""
import argparse
import asyncio
import ipaddress
import json
import os
import random
import signal
import time

stats = {"connects": 0, "connect_errors": 0, "open": 0, "cut_headers": 0, "cut_body": 0,
         "closed_at_once": 0, "answered": 0, "statuses": {}, "held_s_sum": 0.0, "held_s_max": 0.0,
         "probes": []}


def write_stats(path):
    stats["time"] = time.time()
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(stats, f)
    os.replace(tmp, path)


async def client(i, a):
    kind = "headers" if i % 2 == 0 else "body"
    src = str(ipaddress.ip_address(a.first) + i % a.addresses)
    if kind == "headers":
        first = f"GET /api/health HTTP/1.1\r\nHost: {a.host}\r\nX-Slow: ".encode()
    else:
        first = (f"POST {a.body_path} HTTP/1.1\r\nHost: {a.host}\r\nContent-Type: image/jpeg\r\n"
                 f"Content-Length: {a.body_length}\r\n\r\n").encode()
    await asyncio.sleep(random.uniform(0, a.interval))  # not all in step
    while True:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(a.host, a.port, local_addr=(src, 0)), 30)
        except (OSError, asyncio.TimeoutError):
            stats["connect_errors"] += 1
            await asyncio.sleep(1)
            continue
        t0 = time.monotonic()
        stats["connects"] += 1
        stats["open"] += 1
        reply, read, cancelled = b"", None, False
        try:
            writer.write(first)
            await writer.drain()
            read = asyncio.ensure_future(reader.read(256))
            while True:
                done, _ = await asyncio.wait({read}, timeout=a.interval)
                if done:
                    reply = read.result()  # b"" at the server's FIN
                    break
                writer.write(b"a")
                await writer.drain()
        except OSError:  # reset, broken pipe
            pass
        except asyncio.CancelledError:  # the end of the run, not a cut
            cancelled = True
            raise
        finally:
            held = time.monotonic() - t0
            stats["open"] -= 1
            if read is not None and not read.done():
                read.cancel()
            writer.transport.abort()
            if not cancelled:
                if reply:
                    stats["answered"] += 1
                    status = reply.split(b"\r\n", 1)[0].decode("latin-1")[:40]
                    stats["statuses"][status] = stats["statuses"].get(status, 0) + 1
                if held < 1.0:
                    stats["closed_at_once"] += 1
                else:
                    stats["cut_" + kind] += 1
                    stats["held_s_sum"] += held
                    stats["held_s_max"] = max(stats["held_s_max"], held)
        await asyncio.sleep(random.uniform(0.1, 0.5))


async def probe_once(a):
    """One GET /api/health on a new connection: its milliseconds, or why it failed."""
    t0 = time.monotonic()
    writer = None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(a.host, a.port, local_addr=(a.probe_from, 0)), 10)
        writer.write(f"GET /api/health HTTP/1.1\r\nHost: {a.host}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(), 10 - (time.monotonic() - t0))
    except (OSError, asyncio.TimeoutError) as e:
        return "timeout" if isinstance(e, asyncio.TimeoutError) else type(e).__name__
    finally:
        if writer is not None:
            writer.transport.abort()
    if not reply:
        return "closed"  # accepted and closed unanswered
    if not reply.startswith(b"HTTP/1.1 200"):
        return reply.split(b"\r\n", 1)[0].decode("latin-1")[:40]
    return round((time.monotonic() - t0) * 1e3, 2)


async def prober(a):
    while True:
        t = time.time()
        stats["probes"].append([round(t, 3), await probe_once(a)])
        await asyncio.sleep(max(0.0, a.probe_every - (time.time() - t)))


async def main(a):
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    tasks = [asyncio.ensure_future(client(i, a)) for i in range(a.clients)]
    if a.probe_every > 0:
        tasks.append(asyncio.ensure_future(prober(a)))
    t_end = time.monotonic() + a.seconds
    while not stop.is_set() and time.monotonic() < t_end:
        write_stats(a.stats)
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except asyncio.TimeoutError:
            pass
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    write_stats(a.stats)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--clients", type=int, default=300)
    p.add_argument("--addresses", type=int, default=10)
    p.add_argument("--first", default="127.0.0.2")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between two bytes")
    p.add_argument("--body-path", default="/api/models/felines/predict?explain=0")
    p.add_argument("--body-length", type=int, default=100000)
    p.add_argument("--probe-every", type=float, default=0, help="seconds between two probes (0: none)")
    p.add_argument("--probe-from", default="127.0.0.1")
    p.add_argument("--seconds", type=float, default=600)
    p.add_argument("--stats", required=True)
    asyncio.run(main(p.parse_args()))
