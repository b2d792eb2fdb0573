#!/usr/bin/env python3
"""Request bodies for bench/load/bodyload, one JSON object a line.

  make_bodies.py signup N [--run-id ID] [--password P] [--out FILE]
      N sign-ups with unique emails bench-<ID>-<i>@example.com (i = 1..N) and one fixed
      password; ID defaults to a fresh random one, so two runs never collide (a reused email
      is a 409 email_taken).
  make_bodies.py refresh --tokens FILE [N] [--out FILE]
      {"refresh_token": ...} for each line of FILE (refresh tokens, one a line, e.g. from
      bench/load/mint_refresh.py), or for its first N lines. Each token is single use.

Writes to --out (default stdout) and prints the count on stderr. At most 10,000,000 bodies.
"""
import argparse
import json
import secrets
import sys

MAX_BODIES = 10_000_000


def signup(args, out):
    run_id = args.run_id or secrets.token_hex(4)
    if not run_id.replace("-", "").isalnum():
        sys.exit("make_bodies: --run-id must be letters, digits and '-'")
    for i in range(1, args.n + 1):
        body = {"email": f"bench-{run_id}-{i}@example.com", "password": args.password}
        out.write(json.dumps(body, separators=(",", ":")) + "\n")
    return args.n


def refresh(args, out):
    n = 0
    with open(args.tokens, encoding="ascii") as f:
        for line in f:
            token = line.strip()
            if not token:
                continue
            if args.n is not None and n >= args.n:
                break
            if n >= MAX_BODIES:
                sys.exit(f"make_bodies: more than {MAX_BODIES} tokens")
            out.write(json.dumps({"refresh_token": token}, separators=(",", ":")) + "\n")
            n += 1
    if args.n is not None and n < args.n:
        sys.exit(f"make_bodies: {args.tokens} has only {n} tokens, {args.n} asked")
    return n


def count(text):
    n = int(text)
    if n < 1 or n > MAX_BODIES:
        raise argparse.ArgumentTypeError(f"must be 1 to {MAX_BODIES}")
    return n


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="kind", required=True)
    s = sub.add_parser("signup", help="N sign-up bodies with unique emails")
    s.add_argument("n", type=count)
    s.add_argument("--run-id", help="part of every email (default: random)")
    s.add_argument("--password", default="correct horse battery staple")
    s.add_argument("--out")
    r = sub.add_parser("refresh", help="one refresh body per token")
    r.add_argument("n", type=count, nargs="?")
    r.add_argument("--tokens", required=True, help="file of refresh tokens, one a line")
    r.add_argument("--out")
    args = p.parse_args()
    out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout
    try:
        n = signup(args, out) if args.kind == "signup" else refresh(args, out)
    finally:
        if args.out:
            out.close()
    print(f"make_bodies: {n} {args.kind} bodies", file=sys.stderr)


if __name__ == "__main__":
    main()
