#!/usr/bin/python3
"""compose.yaml agrees with deploy/haproxy and the Dockerfile, since no container engine runs it
here: every variable the HAProxy files read is set for the haproxy service, every server they
name is a service, API instances leave jobs to the workers and trust HAProxy's fixed address,
their drain delay covers HAProxy's fall x inter, and the stop timeout covers the drain.

    check_compose.py SOURCE_DIR
"""
import os
import re
import sys

import yaml


def fail(why):
    sys.exit("compose.yaml: " + why)


def seconds(text):
    m = re.fullmatch(r"(\d+)(ms|s)?", str(text))
    return int(m.group(1)) / (1000 if m.group(2) == "ms" else 1)


src = sys.argv[1]
compose = yaml.safe_load(open(os.path.join(src, "compose.yaml")))
services = compose["services"]
cfgs = {}
for name in ("common.cfg", "terminate.cfg", "passthrough.cfg"):
    cfgs[name] = open(os.path.join(src, "deploy", "haproxy", name)).read()
text = "\n".join(cfgs.values())

haproxy_env = services["haproxy"]["environment"]
for var in sorted(set(re.findall(r"\$\{(HYD_[A-Z0-9_]+)\}", text))):
    if var not in haproxy_env:
        fail("the haproxy service does not set %s (deploy/haproxy reads it)" % var)
for host_var in sorted(v for v in haproxy_env if re.fullmatch(r"HYD_API\d+_HOST", v)):
    if haproxy_env[host_var] not in services:
        fail("%s names %s, which is no service" % (host_var, haproxy_env[host_var]))

m = re.search(r"default-server inter (\S+) fall (\d+)", cfgs["common.cfg"])
if not m:
    fail("no 'default-server inter X fall N' in deploy/haproxy/common.cfg")
out_after = seconds(m.group(1)) * int(m.group(2))
haproxy_ip = services["haproxy"]["networks"]["backend"]["ipv4_address"]
apis = [s for s in services if re.fullmatch(r"api\d+", s)]
if len(apis) != len([v for v in haproxy_env if re.fullmatch(r"HYD_API\d+_HOST", v)]):
    fail("API services %s and HAProxy's servers differ" % apis)
for name in apis:
    api = services[name]
    env = api["environment"]
    if env.get("HYDRANT_JOBS_ENABLED") != "false":
        fail("%s must leave jobs to the workers (HYDRANT_JOBS_ENABLED=false)" % name)
    if env.get("HYDRANT_TRUSTED_PROXIES") != haproxy_ip:
        fail("%s must trust HAProxy's address %s" % (name, haproxy_ip))
    delay = int(env["HYDRANT_DRAIN_DELAY_MS"]) / 1000
    if delay <= out_after:
        fail("%s: drain delay %.1f s does not exceed fall x inter = %.1f s" % (name, delay, out_after))
    grace = seconds(api["stop_grace_period"])
    if grace <= delay + int(env["HYDRANT_SHUTDOWN_TIMEOUT_MS"]) / 1000:
        fail("%s: stop_grace_period %s does not cover the drain delay plus the shutdown timeout" % (name, grace))
    if "hydrant migrate up && exec hydrant serve" not in " ".join(api["entrypoint"]):
        fail("%s must migrate, then serve" % name)
worker = services["worker"]
if "exec hydrant worker" not in " ".join(worker["entrypoint"]):
    fail("the worker service must run hydrant worker")
upload_dir = re.search(r"ENV HYDRANT_UPLOAD_DIR=(\S+)", open(os.path.join(src, "Dockerfile")).read()).group(1)
for name in apis + ["worker"]:
    if not any(v.endswith(":" + upload_dir) for v in services[name]["volumes"]):
        fail("%s must mount the shared uploads volume at %s (Dockerfile)" % (name, upload_dir))
print("compose.yaml: consistent with deploy/haproxy and the Dockerfile (%d API instances)" % len(apis))
