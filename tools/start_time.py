#!/usr/bin/env python3
"""Time from start to serving for a server whose database holds 1 000 000 messages in 1 000 rooms.

usage: tools/start_time.py BINARY [RUNS]

Builds the database once in a fresh temporary data directory: the server creates the schema
(started and stopped cleanly), then this script inserts the messages in one transaction with
Python's sqlite3 (the schema is chat-store's v1). Then it starts the server RUNS times (default
5) and prints, for each start, the seconds until `/readyz` answers 200 and the server's RSS
then, and the median time. The
server is stopped with SIGTERM after each run, so every start after the first is a clean one.
"""
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

ROOMS = 1000
PER_ROOM = 1000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ready(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def start(binary, data, port):
    began = time.monotonic()
    proc = subprocess.Popen(
        [binary, "--bind", f"127.0.0.1:{port}", "--data-dir", data, "--log-level", "warn"],
        stdout=subprocess.DEVNULL,
    )
    while not ready(port):
        if proc.poll() is not None:
            sys.exit(f"the server exited with {proc.returncode}")
        if time.monotonic() - began > 60:
            proc.kill()
            sys.exit("not serving after 60 s")
        time.sleep(0.005)
    return proc, time.monotonic() - began


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


def main():
    binary = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    root = tempfile.mkdtemp(prefix="chat-start-time-")
    data = os.path.join(root, "data")
    try:
        proc, _ = start(binary, data, free_port())
        stop(proc)
        db = sqlite3.connect(os.path.join(data, "chat.db"))
        (epoch,) = db.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
        now_ms = int(time.time() * 1000)
        built = time.monotonic()
        with db:
            db.executemany(
                "INSERT INTO messages (room, epoch, id, user, text, client_msg_id, timestamp_ms,"
                " recipient) VALUES (?, ?, ?, ?, ?, NULL, ?, NULL)",
                (
                    (f"room-{r}", epoch, i, f"user{i % 50}", f"message {i} of room {r}", now_ms)
                    for r in range(ROOMS)
                    for i in range(1, PER_ROOM + 1)
                ),
            )
            db.executemany(
                "INSERT INTO rooms (name, last_id, last_seq) VALUES (?, ?, ?)",
                ((f"room-{r}", PER_ROOM, (r + 1) * PER_ROOM) for r in range(ROOMS)),
            )
        db.close()
        size = os.path.getsize(os.path.join(data, "chat.db"))
        print(f"built {ROOMS * PER_ROOM} messages in {ROOMS} rooms "
              f"({size / 1e6:.0f} MB) in {time.monotonic() - built:.1f} s")
        times = []
        for run in range(runs):
            proc, took = start(binary, data, free_port())
            times.append(took)
            with open(f"/proc/{proc.pid}/status") as status:
                rss = next(line.split()[1] for line in status if line.startswith("VmRSS:"))
            print(f"start {run + 1}: serving after {took:.3f} s, RSS {int(rss) / 1024:.1f} MiB")
            stop(proc)
        print(f"median: {statistics.median(times):.3f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
