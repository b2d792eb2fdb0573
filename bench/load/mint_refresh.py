#!/usr/bin/env python3
"""K refresh tokens for one account, one a line, for `make_bodies.py refresh`.

Every refresh token is single use (a second use is 401 token_reused and revokes its
family), so a refresh benchmark of N requests needs N tokens. Two ways to get them:

  mint_refresh.py login --url https://127.0.0.1:PORT --email E --password P --count K
                        [--concurrency 8] [--out FILE]
      K logins over HTTPS (POST /api/v1/auth/login), each answer's refresh_token. Each login
      is an Argon2id verify on the server (~12-30 ms of CPU), so K is capped at 10,000; the
      server's login limits (HYDRANT_LIMIT_LOGIN_PER_EMAIL / _PER_ADDRESS) must be off (0) or
      high enough, else the 429 stops the script. A 503 (CPU pool busy) is retried.
  mint_refresh.py sql --database-url postgresql://hydrant@127.0.0.1:PORT/hydrant --email E
                      --count K [--ttl-s 2592000] [--out FILE]
      The cheap way, for a private benchmark database only: K new sessions written straight
      into hydrant's refresh_tokens table, as K logins would write them (one family each,
      the same lifetime), with psql. A token is 32 random bytes in base64url without padding
      (43 characters, hydrant's own format) and the table holds its SHA-256 in hex
      (migrations/0003_auth.up.sql). No Argon2, no login event in auth_events; capped at
      10,000,000. The account must exist and not be disabled.

Both refuse a server or database that is not on loopback. The tokens go to --out (default
stdout); the count to stderr.
"""
import argparse
import hashlib
import http.client
import json
import re
import secrets
import shutil
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MAX_LOGIN = 10_000
MAX_SQL = 10_000_000
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def die(msg):
    sys.exit(f"mint_refresh: {msg}")


def by_login(args):
    url = urllib.parse.urlsplit(args.url)
    if url.scheme != "https" or url.hostname not in LOOPBACK:
        die("--url must be https://127.0.0.1|localhost|[::1]:PORT")
    body = json.dumps({"email": args.email, "password": args.password})
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # loopback, the dev certificate
    tokens, failures = [], []
    lock = threading.Lock()
    todo = iter(range(args.count))

    def worker():
        conn = http.client.HTTPSConnection(url.hostname, url.port or 443, context=ctx, timeout=60)
        while True:
            with lock:
                if failures or next(todo, None) is None:
                    break
            for attempt in range(20):
                try:
                    conn.request("POST", "/api/v1/auth/login", body, {"content-type": "application/json"})
                    answer = conn.getresponse()
                    data = answer.read()
                except (OSError, http.client.HTTPException) as e:
                    conn.close()
                    conn = http.client.HTTPSConnection(url.hostname, url.port or 443, context=ctx, timeout=60)
                    if attempt == 19:
                        with lock:
                            failures.append(f"login: {e}")
                        break
                    continue
                if answer.status == 503:
                    time.sleep(float(answer.getheader("retry-after", "1")))
                    continue
                with lock:
                    if answer.status == 200:
                        tokens.append(json.loads(data)["refresh_token"])
                    else:
                        failures.append(f"login: HTTP {answer.status} {data[:200].decode(errors='replace')}")
                break
            else:
                with lock:
                    failures.append("login: still 503 after 20 tries")
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(min(args.concurrency, args.count))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        die(failures[0])
    return tokens


def psql(database_url, script, variables=()):
    cmd = ["psql", database_url, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"]
    for name, value in variables:
        cmd += ["-v", f"{name}={value}"]
    done = subprocess.run(cmd + ["-f", "-"], input=script, capture_output=True, text=True)
    if done.returncode != 0:
        die(f"psql: {done.stderr.strip()}")
    return done.stdout


def by_sql(args):
    db = urllib.parse.urlsplit(args.database_url)
    if db.scheme not in ("postgresql", "postgres") or db.hostname not in LOOPBACK:
        die("--database-url must be postgresql://...@127.0.0.1|localhost:PORT/DB (a private database)")
    if shutil.which("psql") is None:
        die("psql is not installed")
    user_id = psql(
        args.database_url,
        "SELECT id FROM users WHERE lower(email) = lower(:'email') AND NOT disabled;\n",
        [("email", args.email)],
    ).strip()
    if not UUID.match(user_id):
        die(f"no enabled account {args.email}")
    tokens = [secrets.token_urlsafe(32) for _ in range(args.count)]
    hashes = "".join(hashlib.sha256(t.encode("ascii")).hexdigest() + "\n" for t in tokens)
    # One transaction; the same columns and lifetime as the refresh_create statement a login runs.
    script = (
        "BEGIN;\n"
        "CREATE TEMP TABLE minted (token_hash text NOT NULL) ON COMMIT DROP;\n"
        "COPY minted FROM STDIN;\n" + hashes + "\\.\n"
        "INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at)\n"
        f"  SELECT token_hash, gen_random_uuid(), '{user_id}'::uuid,\n"
        f"         now() + make_interval(secs => {args.ttl_s}) FROM minted;\n"
        "SELECT count(*) FROM minted;\n"
        "COMMIT;\n"
    )
    inserted = psql(args.database_url, script).strip()
    if inserted != str(args.count):
        die(f"inserted {inserted!r} rows, not {args.count}")
    return tokens


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="via", required=True)
    lg = sub.add_parser("login", help="K logins over HTTPS (K Argon2id verifies)")
    lg.add_argument("--url", required=True, help="https://127.0.0.1:PORT (the TLS listener)")
    lg.add_argument("--email", required=True)
    lg.add_argument("--password", required=True)
    lg.add_argument("--count", type=int, required=True)
    lg.add_argument("--concurrency", type=int, default=8)
    lg.add_argument("--out")
    sq = sub.add_parser("sql", help="K sessions written into refresh_tokens with psql")
    sq.add_argument("--database-url", required=True)
    sq.add_argument("--email", required=True)
    sq.add_argument("--count", type=int, required=True)
    sq.add_argument("--ttl-s", type=int, default=30 * 86400, help="lifetime (hydrant's default 30 days)")
    sq.add_argument("--out")
    args = p.parse_args()
    limit = MAX_LOGIN if args.via == "login" else MAX_SQL
    if not 1 <= args.count <= limit:
        die(f"--count must be 1 to {limit} for {args.via}")
    if args.via == "login" and not 1 <= args.concurrency <= 64:
        die("--concurrency must be 1 to 64")
    if args.via == "sql" and not 1 <= args.ttl_s <= 366 * 86400:
        die("--ttl-s must be 1 to 366 days")
    tokens = by_login(args) if args.via == "login" else by_sql(args)
    out = open(args.out, "w", encoding="ascii") if args.out else sys.stdout
    out.write("".join(t + "\n" for t in tokens))
    if args.out:
        out.close()
    print(f"mint_refresh: {len(tokens)} refresh tokens via {args.via}", file=sys.stderr)


if __name__ == "__main__":
    main()
