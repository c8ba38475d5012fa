"""Feed latency: CLIENTS Server-Sent-Event clients follow one contact's messages on one api;
CHANGES new messages are written to PostgreSQL (psql, each its own transaction, RATE a
second), and every client measures, for every change, the time from the row's write
(updated_at = clock_timestamp() in the writing statement) to its event's arrival.
Prints p50, p99 and max over all deliveries, and how many arrived of how many expected.
Usage: python3 feed_latency.py API_URL ADMIN_TOKEN DATABASE_URL [CLIENTS CHANGES RATE]"""
import asyncio, json, re, subprocess, sys, time, urllib.request
from datetime import datetime
from urllib.parse import urlsplit

api, admin, database = sys.argv[1], sys.argv[2], sys.argv[3]
clients = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
changes = int(sys.argv[5]) if len(sys.argv) > 5 else 100
rate = float(sys.argv[6]) if len(sys.argv) > 6 else 10


def call(method, path, body=None, token=admin):
    req = urllib.request.Request(api + path, method=method, data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


token = call("POST", "/v1/tokens", {"name": "bench-feed"})["token"]
owner = call("GET", "/v1/whoami", token=token)["id"]
contact = call("POST", "/v1/contacts", {"nome": "feed", "telefone": "+5511900000000"}, token=token)["id"]
latencies, opened = [], 0
UPDATED_AT = re.compile(rb'"updated_at": ?"([^"]+)"')


async def follow(done):
    global opened
    u = urlsplit(api)
    reader, writer = await asyncio.open_connection(u.hostname, u.port)
    writer.write((f"GET /v1/feeds/contacts/{contact}/messages HTTP/1.1\r\nHost: {u.hostname}\r\n"
                  f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n").encode())
    await writer.drain()
    status = await reader.readline()
    if b" 200 " not in status:
        raise SystemExit(f"feed refused: {status!r}")
    seen = 0
    while seen < changes and not done.is_set():
        line = await reader.readline()
        if not line:
            break
        if line.startswith(b"retry:"):
            opened += 1
        if b"data: {" in line:
            at = time.time()
            # The write time only (parsing the whole row for each of a thousand clients would
            # add this one process's own time to the latencies of the later clients).
            written = datetime.fromisoformat(UPDATED_AT.search(line).group(1).decode()).timestamp()
            latencies.append((at - written) * 1000)
            seen += 1
    writer.close()


def write_changes():
    lines = []
    for i in range(changes):
        lines.append("INSERT INTO mensagens (id, owner_id, contato_id, direcao, conteudo, status, created_at, updated_at) "
                     f"VALUES (gen_random_uuid(), '{owner}', '{contact}', 'entrada', 'm{i}', 'recebida', clock_timestamp(), clock_timestamp());")
        lines.append(f"SELECT pg_sleep({1 / rate});")
    subprocess.run(["psql", "-q", "-X", "-v", "ON_ERROR_STOP=1", "-o", "/dev/null", database], input="\n".join(lines).encode(), check=True)


async def main():
    done = asyncio.Event()
    tasks = [asyncio.create_task(follow(done)) for _ in range(clients)]
    deadline = time.time() + 60
    while opened < clients and time.time() < deadline:
        await asyncio.sleep(0.1)
    print(f"{opened} of {clients} feed clients open")
    await asyncio.sleep(1)
    await asyncio.get_running_loop().run_in_executor(None, write_changes)
    await asyncio.wait(tasks, timeout=30)
    done.set()
    expected = clients * changes
    got = sorted(latencies)
    if not got:
        raise SystemExit("no events arrived")
    p = lambda q: got[min(len(got) - 1, int(q * len(got)))]
    print(f"{len(got)} of {expected} deliveries; change -> event latency p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms, max {got[-1]:.1f} ms")
    print(f"RESULT delivered={len(got)} expected={expected} p50={p(0.5):.1f} p99={p(0.99):.1f} max={got[-1]:.1f}")


asyncio.run(main())
