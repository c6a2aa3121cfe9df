#!/usr/bin/env python3
# Web admin page cost: python3 benches/admin_pages.py HOST PORT PASSWORD PATH...
# against a running `herald serve` (release build) with some webhooks and log entries.
# Times N sequential GETs of each admin page against /healthz on the same
# server and connection; prints medians and the ratio to /healthz.
import http.client, re, statistics, sys, time, urllib.parse
host, port, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3]
N = 300
c = http.client.HTTPConnection(host, port)
c.request("GET", "/login"); r = c.getresponse(); body = r.read().decode()
login_cookie = r.getheader("set-cookie").split(";")[0]
token = re.search(r'name="csrf" value="([^"]+)"', body).group(1)
t0 = time.perf_counter()
c.request("POST", "/login", urllib.parse.urlencode({"password": pw, "csrf": token, "next": "/webhooks"}),
          {"Content-Type": "application/x-www-form-urlencoded", "Cookie": login_cookie})
r = c.getresponse(); r.read()
login_ms = (time.perf_counter() - t0) * 1000
cookie = [h for k, h in r.getheaders() if k.lower() == "set-cookie" and h.startswith("herald_session=")][0].split(";")[0]
def med(path):
    xs = []
    for _ in range(N):
        t = time.perf_counter(); c.request("GET", path, headers={"Cookie": cookie}); r = c.getresponse(); r.read()
        assert r.status == 200, (path, r.status)
        xs.append((time.perf_counter() - t) * 1000)
    return statistics.median(xs), sorted(xs)[int(N * .99) - 1]
base = med("/healthz")
print(f"login (argon2 verify + session insert): {login_ms:.1f} ms")
print(f"/healthz baseline: p50 {base[0]:.2f} ms p99 {base[1]:.2f} ms")
for p in sys.argv[4:]:
    m = med(p)
    print(f"{p}: p50 {m[0]:.2f} ms p99 {m[1]:.2f} ms  = {m[0]/base[0]:.1f}x /healthz")
