"""An SMTP server for tests and benchmarks that keeps what it receives.

    smtp_sink.py --port PORT --dir DIR

Each message accepted is written to DIR/<n>.eml (the data as received) with DIR/<n>.json
(mail_from, rcpt_tos, received_at in epoch seconds); n counts from 1. Failures on demand:
while DIR/fault holds `<stage> <reply>` (stage `rcpt` or `data`, reply e.g. `550 5.1.1 no such
user`), every transaction gets that reply at that stage; `data drop` closes the connection
instead of answering the data; `data hold SECONDS` keeps the message, then waits that long
before answering it (a client killed meanwhile never learns it was taken). With `--count-only` nothing is written but DIR/count.
DIR/sessions counts the SMTP sessions (EHLO or HELO) in both modes. Both counters are written
every 50 ms when they changed, never while a client waits: a file replaced by rename makes
ext4 write its data out first, which on a busy disk held every session's answer for tens of
milliseconds.
Prints "listening" once it accepts connections; stops on SIGTERM.
"""
import argparse
import asyncio
import json
import os
import signal
import threading
import time

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory, count_only):
        self.directory = directory
        self.count_only = count_only
        self.lock = threading.Lock()
        self.count = 0
        self.sessions = 0

    def write(self, name, value):
        path = os.path.join(self.directory, name)
        with open(path + ".tmp", "w") as f:
            f.write(str(value))
        os.replace(path + ".tmp", path)

    def write_counters(self):
        """Writes DIR/count (count-only) and DIR/sessions every 50 ms when they changed."""
        written = (None, None)
        while True:
            with self.lock:
                now = (self.count, self.sessions)
            if now != written:
                if self.count_only:
                    self.write("count", now[0])
                self.write("sessions", now[1])
                written = now
            time.sleep(0.05)

    def session_started(self):
        with self.lock:
            self.sessions += 1

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        self.session_started()
        return responses

    async def handle_HELO(self, server, session, envelope, hostname):
        session.host_name = hostname
        self.session_started()
        return "250 {}".format(server.hostname)

    def fault(self, stage):
        try:
            with open(os.path.join(self.directory, "fault")) as f:
                text = f.read().strip()
        except FileNotFoundError:
            return None
        parts = text.split(" ", 1)
        return parts[1] if len(parts) == 2 and parts[0] == stage else None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.fault("rcpt")
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        reply = self.fault("data")
        if reply == "drop":
            server.transport.close()
            return "421 closing"
        hold = 0.0
        if reply and reply.startswith("hold "):
            hold, reply = float(reply.split(" ", 1)[1]), None
        if reply:
            return reply
        with self.lock:
            self.count += 1
            n = self.count
            if self.count_only:
                return "250 OK"
        base = os.path.join(self.directory, str(n))
        with open(base + ".eml", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        meta = {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos, "received_at": time.time()}
        with open(base + ".json.tmp", "w") as f:
            json.dump(meta, f)
        # The .json last and whole: a reader that sees it sees the message too.
        os.replace(base + ".json.tmp", base + ".json")
        if hold:
            await asyncio.sleep(hold)
        return "250 Message accepted"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--count-only", action="store_true")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    sink = Sink(args.dir, args.count_only)
    threading.Thread(target=sink.write_counters, daemon=True).start()
    controller = Controller(sink, hostname="127.0.0.1", port=args.port, data_size_limit=10 * 1024 * 1024)
    controller.start()
    print("listening", flush=True)
    # Exit at once: a graceful stop would wait for clients that keep their connections open.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
