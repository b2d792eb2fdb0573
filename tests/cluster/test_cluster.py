#!/usr/bin/python3
"""Cluster tests: a real HAProxy in front of 3 hydrant instances and 2 workers (scripts/cluster.sh),
a client applying steady load, and instances restarted or killed under it.

    test_cluster.py DIR TEST      DIR: the running cluster (cluster.sh start DIR)

Each TEST asserts; a failed assertion exits 1 with the reason. No test asserts a duration: every
wait is a bounded poll. Clients connect from other loopback addresses (127.0.0.2...) so that the
client address hydrant sees can be told from HAProxy's (127.0.0.1).
"""
import http.client
import json
import os
import ssl
import subprocess
import sys
import threading
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLUSTER_SH = os.path.join(ROOT, "scripts", "cluster.sh")
PASSWORD = "correct horse battery staple 1"
TLS = ssl._create_unverified_context()  # the cluster's self-signed development certificate


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def load_env(cluster_dir):
    env = {}
    with open(os.path.join(cluster_dir, "cluster.env")) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                env[k] = v
    return env


class Client:
    """One keep-alive HTTP/1.1 connection (TLS or plain) from a chosen loopback source."""

    def __init__(self, port, tls=True, source="127.0.0.2", timeout=15):
        self.port, self.tls, self.source, self.timeout = port, tls, source, timeout
        self.conn = None

    def _connect(self):
        src = (self.source, 0)
        if self.tls:
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=self.timeout, context=TLS,
                                               source_address=src)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout, source_address=src)

    def request(self, method, path, body=None, headers=None, token=None, content_type="application/json"):
        """(status, parsed JSON or raw bytes, headers). Raises on a transport failure."""
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = "Bearer " + token
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            hdrs["Content-Type"] = content_type
        if self.conn is None:
            self.conn = self._connect()
        try:
            self.conn.request(method, path, body=data, headers=hdrs)
            res = self.conn.getresponse()
            raw = res.read()
        except Exception:
            self.close()
            raise
        if res.getheader("Connection", "").lower() == "close":
            self.close()
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = raw
        return res.status, doc, res

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def cluster(cluster_dir, *args):
    subprocess.run(["bash", CLUSTER_SH, args[0], cluster_dir, *args[1:]], check=True)


def signup(client, email):
    status, doc, _ = client.request("POST", "/api/v1/auth/signup", {"email": email, "password": PASSWORD})
    return status


def login(client, email, password=PASSWORD):
    status, doc, _ = client.request("POST", "/api/v1/auth/login", {"email": email, "password": password})
    check(status == 200, "login of %s: %s %s" % (email, status, doc))
    return doc


def new_user(client, tag):
    email = "%s-%s@example.com" % (tag, uuid.uuid4().hex[:12])
    check(signup(client, email) == 201, "sign-up of " + email)
    return email, login(client, email)


def refused_after(limit, attempt):
    """Failed logins 0..limit-1 answer 401; then a refusal (429) must come within 3 more. A
    failed login's count reaches Redis just after its answer, so the next request, on another
    instance, may still pass; counted per instance it would take about 3 x limit."""
    for i in range(limit):
        status = attempt(i)
        check(status == 401, "failed login %d: %s" % (i, status))
    statuses = []
    for i in range(limit, limit + 3):
        statuses.append(attempt(i))
        if statuses[-1] != 401:
            break
    check(statuses[-1] == 429, "logins over the limit of %d: %s" % (limit, statuses))


def psql(env, sql):
    out = subprocess.run(["psql", "-At", env["CLUSTER_DATABASE_URL"], "-c", sql], check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


def wait_until(what, fn, bound_s=30, step=0.1):
    end = time.monotonic() + bound_s
    while time.monotonic() < end:
        if fn():
            return
        time.sleep(step)
    raise Failure("not within %d s: %s" % (bound_s, what))


def server_state(env, backend, name):
    conn = http.client.HTTPConnection("127.0.0.1", int(env["HYD_STATS_PORT"]), timeout=5)
    conn.request("GET", "/stats;csv")
    for line in conn.getresponse().read().decode().splitlines():
        f = line.split(",")
        if len(f) > 17 and f[0] == backend and f[1] == name:
            return f[17]
    return None


def api_port(env, n, tls=False):
    return int(env["HYD_API%d_%s" % (n, "TLS" if tls else "HTTP")])


class Load:
    """Steady mixed load through HAProxy from `threads` clients, each with one request in flight:
    GET /me, POST refresh, small uploads and sign-ups. Records every acknowledged sign-up and
    upload, and every client-visible failure (transport error or 5xx)."""

    def __init__(self, env, tag, threads=4, port_key="HYD_HTTPS_PORT", reconnect=False, first_source=10):
        self.env, self.tag, self.port = env, tag, int(env[port_key])
        self.reconnect, self.first_source = reconnect, first_source
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.failures, self.requests = [], 0
        self.signups, self.uploads = [], []  # acknowledged
        self.users = []  # the clients' own accounts, owners of the uploads
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _note(self, what, status=None):
        with self.lock:
            self.requests += 1
            if status is None or status >= 500:
                self.failures.append("%s: %s" % (what, status))

    def _call(self, client, what, *args, **kw):
        try:
            status, doc, _ = client.request(*args, **kw)
        except Exception as e:  # a client-visible failure
            self._note("%s (%s)" % (what, type(e).__name__))
            return None, None
        finally:
            if self.reconnect:
                client.close()
        self._note(what, status)
        return status, doc

    def _run(self, i):
        client = Client(self.port, source="127.0.0.%d" % (self.first_source + i))
        email = "%s-%d-%s@example.com" % (self.tag, i, uuid.uuid4().hex[:8])
        with self.lock:
            self.users.append(email)
        signup(client, email)
        tokens = login(client, email)
        n = 0
        while not self.stop.is_set():
            n += 1
            status, doc = self._call(client, "GET /me", "GET", "/api/v1/me", token=tokens["access_token"])
            status, doc = self._call(client, "refresh", "POST", "/api/v1/auth/refresh",
                                     {"refresh_token": tokens["refresh_token"]})
            if status == 200:
                tokens = doc
            body = ("upload %d of %s\n" % (n, email)).encode()
            status, doc = self._call(client, "upload", "POST", "/api/v1/files?name=n%d.txt" % n, body,
                                     token=tokens["access_token"], content_type="text/plain")
            if status == 201:
                with self.lock:
                    self.uploads.append((tokens["access_token"], doc["file"]["id"], body))
            if n % 4 == 0:
                other = "%s-s%d-%d-%s@example.com" % (self.tag, i, n, uuid.uuid4().hex[:6])
                status, _ = self._call(client, "sign-up", "POST", "/api/v1/auth/signup",
                                       {"email": other, "password": PASSWORD})
                if status == 201:
                    with self.lock:
                        self.signups.append(other)
        client.close()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(60)


def check_acknowledged(env, load):
    """Every acknowledged sign-up is in the database and every acknowledged upload can be read
    back with its bytes; beyond them, only the failed requests may have left rows (a request
    replayed after it took effect would leave one more)."""
    emails = ",".join("'%s'" % e for e in load.signups)
    if emails:
        count = psql(env, "SELECT count(*) FROM users WHERE email IN (%s)" % emails)
        check(int(count) == len(load.signups), "sign-ups: %s of %d in the database" % (count, len(load.signups)))
    made = int(psql(env, "SELECT count(*) FROM users WHERE email LIKE '%s-s%%'" % load.tag))
    check(len(load.signups) <= made <= len(load.signups) + len(load.failures),
          "sign-up rows: %d for %d acknowledged, %d failed" % (made, len(load.signups), len(load.failures)))
    owners = ",".join("'%s'" % e for e in load.users)
    rows = int(psql(env, "SELECT count(*) FROM files f JOIN users u ON u.id = f.owner_id WHERE u.email IN (%s)"
                    % owners))
    check(len(load.uploads) <= rows <= len(load.uploads) + len(load.failures),
          "file rows: %d for %d acknowledged uploads, %d failed" % (rows, len(load.uploads), len(load.failures)))
    client = Client(int(env["HYD_HTTPS_PORT"]), source="127.0.0.6")
    for token, file_id, body in load.uploads:
        status, doc, _ = client.request("GET", "/api/v1/files/%s/content" % file_id, token=token)
        check(status == 200 and doc == body, "upload %s: %s" % (file_id, status))
    client.close()


# ----------------------------------------------------------------------------- tests ---


def test_fresh_start(cluster_dir, env):
    """The fixture started 3 instances (and 2 workers) at once on an empty database: every
    migration was applied once, by one process, and all serve, in both HAProxy modes."""
    ups = sorted(f for f in os.listdir(os.path.join(ROOT, "migrations")) if f.endswith(".up.sql"))
    versions = psql(env, "SELECT count(*), count(DISTINCT version) FROM schema_migrations").split("|")
    check(versions == [str(len(ups))] * 2, "schema_migrations: %s for %d files" % (versions, len(ups)))
    applied = {}
    for name in ("api1", "api2", "api3", "worker1", "worker2"):
        path = os.path.join(cluster_dir, name, "migrate.log")
        lines = open(path).read().split("\n") if os.path.exists(path) else []
        applied[name] = sum(1 for line in lines if line.startswith("applied "))
    check(sum(applied.values()) == len(ups) and max(applied.values()) == len(ups),
          "one process applies every migration: %s" % applied)
    for n in (1, 2, 3):
        status, doc, _ = Client(api_port(env, n), tls=False).request("GET", "/health/ready")
        check(status == 200 and doc == {"status": "ready"}, "api%d ready: %s %s" % (n, status, doc))
    for key in ("HYD_HTTPS_PORT", "HYD_PASSTHROUGH_PORT"):
        status, doc, _ = Client(int(env[key])).request("GET", "/health/ready")
        check(status == 200, "through HAProxy (%s): %s" % (key, status))


def test_client_address(cluster_dir, env):
    """Through the TLS-terminating HAProxy the access log and the per-address login limit see
    the client's own address, not HAProxy's, and a client's X-Forwarded-For is not believed."""
    rid = "cluster-xff-" + uuid.uuid4().hex[:8]
    started = psql(env, "SELECT now()")
    client = Client(int(env["HYD_HTTPS_PORT"]), source="127.0.0.2")
    status, _, _ = client.request("GET", "/health/live", headers={"X-Request-Id": rid,
                                                                 "X-Forwarded-For": "203.0.113.9"})
    check(status == 200, "GET /health/live: %s" % status)

    def logged():
        for name in ("api1", "api2", "api3"):
            path = os.path.join(cluster_dir, name, "access.log")
            for line in open(path) if os.path.exists(path) else []:
                if rid in line:
                    return json.loads(line)
        return None

    wait_until("the access-log line of " + rid, logged)
    check(logged()["client"] == "127.0.0.2", "access log client: %s" % logged())
    # limits: HYDRANT_LIMIT_LOGIN_PER_ADDRESS failed logins (fixture: 8) from 127.0.0.2, over
    # every instance; the next is refused, while 127.0.0.3 through the same HAProxy is not.
    limit = int(os.environ.get("HYDRANT_LIMIT_LOGIN_PER_ADDRESS", "8"))
    refused_after(limit, lambda i: client.request("POST", "/api/v1/auth/login", {
        "email": "nobody-%d@example.com" % i, "password": "wrong password"})[0])
    # The audit log (auth_events, written after the answer) has the failed logins under the
    # client's address, and none under HAProxy's (other tests, which may run meanwhile, reach
    # instances directly from 127.0.0.1: only failed logins since this test began count).
    wait_until("the audit records of the failed logins", lambda: int(psql(
        env, "SELECT count(*) FROM auth_events WHERE kind = 'login_failed' AND address = '127.0.0.2'")) >= limit)
    check(psql(env, "SELECT count(*) FROM auth_events WHERE kind = 'login_failed' AND address = '127.0.0.1' "
                    "AND created_at >= '%s'" % started) == "0",
          "failed logins recorded under HAProxy's address")
    other = Client(int(env["HYD_HTTPS_PORT"]), source="127.0.0.3")
    status, _, _ = other.request("POST", "/api/v1/auth/login",
                                 {"email": "nobody-y@example.com", "password": "wrong password"})
    check(status == 401, "another client's login: %s" % status)


LATE = []  # revocations whose very next request on another instance was still accepted


def refused(client, token, what):
    """The token is refused (401) on client's instance. With the principal cache another
    instance learns of a revocation by PostgreSQL notification, which the changing instance
    waits for (at most 50 ms) before it answers: "almost always" in time (docs/ARCHITECTURE.md,
    "The principal cache"). So the first answer may still be 200: counted and reported, and
    then the refusal must come within a bounded poll."""
    status = client.request("GET", "/api/v1/me", token=token)[0]
    if status == 200:
        LATE.append(what)
        end = time.monotonic() + 2
        while status == 200 and time.monotonic() < end:
            time.sleep(0.02)
            status = client.request("GET", "/api/v1/me", token=token)[0]
    check(status == 401, "%s: %s" % (what, status))


def test_shared_revocation(cluster_dir, env):
    """Logout, password change and disabling on one instance make the access token fail on the
    others (at once but for the principal cache's notification lag, counted); failed logins
    per email count across instances."""
    a, b, c = (Client(api_port(env, n), tls=False, source="127.0.0.4") for n in (1, 2, 3))
    email, tokens = new_user(a, "revoke")
    check(b.request("GET", "/api/v1/me", token=tokens["access_token"])[0] == 200, "token on B")
    check(a.request("POST", "/api/v1/auth/logout", {}, token=tokens["access_token"])[0] == 204, "logout on A")
    refused(b, tokens["access_token"], "logged-out token on B")
    refused(c, tokens["access_token"], "logged-out token on C")

    tokens = login(b, email)
    status = c.request("PUT", "/api/v1/me/password", {"current_password": PASSWORD, "new_password": PASSWORD + "x"},
                       token=tokens["access_token"])[0]
    check(status == 204, "password change on C: %s" % status)
    refused(a, tokens["access_token"], "token on A after the password change on C")

    admin_email = "admin-%s@example.com" % uuid.uuid4().hex[:8]
    subprocess.run([os.environ.get("HYDRANT_BIN", os.path.join(ROOT, "build", "hydrant")), "user", "create",
                    "--email", admin_email, "--role", "admin"], input=PASSWORD, text=True, check=True,
                   capture_output=True, env=dict(os.environ, HYDRANT_DATABASE_URL=env["CLUSTER_DATABASE_URL"],
                                                 HYDRANT_CONFIG=os.path.join(ROOT, "h2o.conf"),
                                                 HYDRANT_TLS_CERT=os.path.join(cluster_dir, "tls", "cert.pem"),
                                                 HYDRANT_TLS_KEY=os.path.join(cluster_dir, "tls", "key.pem")))
    admin = login(a, admin_email)
    victim_email, victim = new_user(b, "disable")
    victim_id = b.request("GET", "/api/v1/me", token=victim["access_token"])[1]["user"]["id"]
    status = a.request("PATCH", "/api/v1/admin/users/" + victim_id, {"disabled": True},
                       token=admin["access_token"])[0]
    check(status == 200, "disable on A: %s" % status)
    refused(c, victim["access_token"], "disabled user's token on C")

    # Failed logins per email (fixture: 5), one instance after the other.
    email, _ = new_user(a, "limit")
    limit = int(os.environ.get("HYDRANT_LIMIT_LOGIN_PER_EMAIL", "5"))
    clients = (a, b, c)
    refused_after(limit, lambda i: clients[i % 3].request("POST", "/api/v1/auth/login", {
        "email": email, "password": "wrong"})[0])
    print("shared revocation: %d of 4 revocations not yet seen by the very next request on another "
          "instance: %s" % (len(LATE), LATE))


def test_rolling_restart(cluster_dir, env):
    """Every instance restarted in turn (SIGTERM: not ready, drained, started again) under
    continuous load through HAProxy in both modes: no failed request, no 5xx, nothing
    acknowledged lost. Through the TLS-terminating HAProxy the clients keep their connections;
    through the TCP pass-through, where a draining instance closes its clients' idle
    connections itself, they open one per request."""
    with Load(env, "rolling") as load, Load(env, "passthrough", threads=2, port_key="HYD_PASSTHROUGH_PORT",
                                            reconnect=True, first_source=30) as direct:
        time.sleep(1)
        for name in ("api1", "api2", "api3"):
            cluster(cluster_dir, "restart", name)
        time.sleep(1)
    for mode, l in (("terminating", load), ("pass-through", direct)):
        print("rolling restart (%s): %d requests, %d sign-ups, %d uploads, %d failures"
              % (mode, l.requests, len(l.signups), len(l.uploads), len(l.failures)))
        check(l.requests > 0 and l.signups and l.uploads, "the load ran (%s)" % mode)
        check(not l.failures, "client-visible failures (%s): %s" % (mode, l.failures[:10]))
        check_acknowledged(env, l)


def test_sigkill(cluster_dir, env):
    """SIGKILL of one instance under load: only requests sent to it before HAProxy noticed may
    fail (each client has one in flight at the kill, and may send one more over a connection
    HAProxy had kept open to it: a POST without Idempotency-Key is not replayed, by design),
    HAProxy stops routing to it, the others carry on, and no file row of the killed instance
    lacks its bytes."""
    threads = 4
    with Load(env, "sigkill", threads=threads) as load:
        time.sleep(1)
        cluster(cluster_dir, "kill", "api2")
        killed = time.monotonic()
        wait_until("api2 DOWN in HAProxy", lambda: server_state(env, "api", "api2") == "DOWN")
        print("sigkill: HAProxy took api2 out after %.1f s" % (time.monotonic() - killed))
        with load.lock:
            failed_at_kill = len(load.failures)
            seen = load.requests
        wait_until("more load served", lambda: load.requests > seen + 50)
    print("sigkill: %d requests, %d failures (at most %d allowed): %s"
          % (load.requests, len(load.failures), 2 * threads, load.failures))
    check(failed_at_kill <= 2 * threads, "failures from the kill: %s" % load.failures)
    check(len(load.failures) == failed_at_kill, "failures after HAProxy took api2 out: %s" % load.failures)
    check_acknowledged(env, load)
    rows = psql(env, "SELECT id FROM files")
    missing = [i for i in rows.split("\n")
               if i and not os.path.exists(os.path.join(cluster_dir, "uploads", i[:2], i[2:4], i))]
    check(not missing, "file rows without bytes: %s" % missing[:5])
    cluster(cluster_dir, "start-one", "api2")


def upload_many(env, token, count, tag, threads=4):
    """count small uploads through HAProxy, each of which queues a file.process job."""
    done, errors = [], []

    def run(i):
        client = Client(int(env["HYD_HTTPS_PORT"]), source="127.0.0.%d" % (20 + i))
        for n in range(i, count, threads):
            status, doc, _ = client.request("POST", "/api/v1/files?name=%s-%d.txt" % (tag, n),
                                            ("job %s %d\n" % (tag, n)).encode(), token=token,
                                            content_type="text/plain")
            (done if status == 201 else errors).append(status)
        client.close()

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(120)
    check(len(done) == count, "uploads: %d of %d (%s)" % (len(done), count, errors[:5]))


def job_states(env, owner):
    rows = psql(env, "SELECT id, state, attempt FROM jobs WHERE kind = 'file.process' AND owner_id = '%s'" % owner)
    return [tuple(r.split("|")) for r in rows.split("\n") if r]


def test_jobs(cluster_dir, env):
    """Jobs across the 2 workers: none lost, none run twice while both live; when one is
    SIGKILLed with jobs claimed, only those may run again, and every job still succeeds."""
    client = Client(int(env["HYD_HTTPS_PORT"]), source="127.0.0.5")  # not client_address's
    email, tokens = new_user(client, "jobs")
    owner = client.request("GET", "/api/v1/me", token=tokens["access_token"])[1]["user"]["id"]
    count = 150
    upload_many(env, tokens["access_token"], count, "a")
    wait_until("%d jobs done" % count,
               lambda: sum(1 for _, st, _ in job_states(env, owner) if st == "succeeded") == count, 60)
    runs = [int(a) for _, _, a in job_states(env, owner)]
    check(len(runs) == count and set(runs) == {1}, "each job ran once: attempts %s" % sorted(set(runs)))

    # Jobs held in flight: the SMTP sink stopped (SIGSTOP), each worker's short-queue threads
    # claim a confirmation email each and wait for the sink's greeting. Then worker1 is killed
    # and the sink resumed: the others finish, worker1's come back when their lease expires.
    sink = int(open(os.path.join(cluster_dir, "services", "smtp", "pid")).read())
    worker1 = int(open(os.path.join(cluster_dir, "worker1", "pid")).read())
    tag = "kill-" + uuid.uuid4().hex[:8]
    mail_jobs = "SELECT id, state, attempt, coalesce(lease_owner, '') FROM jobs " \
                "WHERE kind = 'email.confirmation' AND payload::text LIKE '%%%s%%'" % tag

    def jobs():
        return [tuple(r.split("|")) for r in psql(env, mail_jobs).split("\n") if r]

    os.kill(sink, 19)  # SIGSTOP
    try:
        for i in range(6):
            status = signup(Client(int(env["HYD_HTTPS_PORT"]), source="127.0.1.%d" % (i + 1)),
                            "%s-%d@example.com" % (tag, i))
            check(status == 201, "sign-up %d: %s" % (i, status))
        wait_until("both workers holding jobs", lambda: len({o.split(":")[1] for _, st, _, o in jobs()
                                                             if st == "running"}) == 2, 30)
        claimed = {i for i, st, _, o in jobs() if st == "running" and o.split(":")[1] == str(worker1)}
        cluster(cluster_dir, "kill", "worker1")
    finally:
        os.kill(sink, 18)  # SIGCONT
    wait_until("every email job done", lambda: all(st == "succeeded" for _, st, _, _ in jobs()), 90)
    again = {i for i, _, a, _ in jobs() if int(a) > 1}
    print("jobs: %d claimed by the killed worker, %d ran again, %d in all" % (len(claimed), len(again), len(jobs())))
    check(claimed, "worker1 held no job when killed")
    check(again <= claimed, "jobs run again that the killed worker had not claimed: %s" % (again - claimed))
    cluster(cluster_dir, "start-one", "worker1")


TESTS = {name[5:]: fn for name, fn in globals().items() if name.startswith("test_")}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[2] not in TESTS:
        sys.exit("usage: test_cluster.py DIR {%s}" % "|".join(TESTS))
    cluster_dir = os.path.abspath(sys.argv[1])
    try:
        TESTS[sys.argv[2]](cluster_dir, load_env(cluster_dir))
    except Failure as e:
        print("FAILED %s: %s" % (sys.argv[2], e), file=sys.stderr)
        sys.exit(1)
    print("passed " + sys.argv[2])
