#!/usr/bin/python3
"""The broker at the API's distance (bench/run's "wan" section).

A delaying proxy (bench/delay_proxy.py, --rtt-ms, default 20) sits between
every client and an emulator that, like Apache's default, closes a
connection idle for 5 s. Measured in one run, each call a curl process as a
job's would be (a burst: one curl with 32 connections at once), in
milliseconds of curl's time_total:

  broker (HTTP door, Unix socket): warm, sporadic (after 6 s of quiet), a
  burst of 32 after quiet, the first call after a restart with a kept token;
  with upstream.keep_warm off and on, and against an HTTP/2 front (nginx)
  for the burst; against: curl direct with the password, with a token, the
  token dance per process (login, then the call: python-stormondemand), and
  nginx injecting a token with upstream keep-alive.

  wan.py BUILD_DIR WORK_DIR [--rtt-ms N] [--quick]   -> one JSON object on stdout
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PASSWORD = "wan-bench-password"
QUIET_S = 6  # longer than the emulator's keep-alive (5 s)
PING = '{"params": {}}'


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Bench:
    def __init__(self, build, work, rtt_ms):
        self.build, self.work, self.rtt_ms = build, work, rtt_ms
        self.procs = []
        os.makedirs(work, exist_ok=True)
        with open(f"{work}/users.yaml", "w") as f:
            f.write(f"- username: bench\n  password: {PASSWORD}\n")
        with open(f"{work}/password", "w") as f:
            f.write(PASSWORD + "\n")
        os.chmod(f"{work}/password", 0o600)
        subprocess.run([f"{ROOT}/tests/fake_storm/make_test_ca", f"{work}/certs"], check=True)
        self.ca = f"{work}/certs/ca.pem"

    def spawn(self, name, argv, ready=None):
        log = open(f"{self.work}/{name}.log", "w")
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE if ready == "stdout" else log, stderr=log, text=True)
        self.procs.append(proc)
        return proc

    def storm(self, name, plain):
        flags = ["--plain"] if plain else ["--cert", f"{self.work}/certs/server.pem", "--key",
                                           f"{self.work}/certs/server.key"]
        proc = self.spawn(name, [f"{self.build}/tests/fake_storm/fake_storm", "--port", "0", "--users",
                                 f"{self.work}/users.yaml", "--keep-alive", "5"] + flags, ready="stdout")
        url = proc.stdout.readline().split()[2]
        return url.split("//")[1].split("/")[0]  # host:port

    def delay(self, name, target):
        port = free_port()
        proc = self.spawn(name, [sys.executable, f"{ROOT}/bench/delay_proxy.py", "--listen", str(port), "--to", target,
                                 "--rtt-ms", str(self.rtt_ms), "--count", f"{self.work}/{name}.count"],
                          ready="stdout")
        proc.stdout.readline()
        return port

    def connections(self, name):
        try:
            return int(open(f"{self.work}/{name}.count").read())
        except (OSError, ValueError):
            return 0

    def nginx(self, name, body):
        prefix = f"{self.work}/{name}"
        os.makedirs(prefix + "/logs", exist_ok=True)
        conf = f"{prefix}/nginx.conf"
        with open(conf, "w") as f:
            f.write(f"daemon off;\nuser root;\nerror_log {prefix}/error.log;\npid {prefix}/nginx.pid;\n"
                    f"events {{ worker_connections 1024; }}\nhttp {{\n  access_log off;\n"
                    f"  client_body_temp_path {prefix}/body;\n  proxy_temp_path {prefix}/proxy;\n{body}\n}}\n")
        self.spawn(name, ["/usr/sbin/nginx", "-c", conf, "-p", prefix])

    def broker(self, name, url, extra_upstream="", state=False):
        sock = f"{self.work}/{name}-http.sock"
        conf = f"{self.work}/{name}.yaml"
        with open(conf, "w") as f:
            f.write(f"listen:\n  socket: {self.work}/{name}.sock\n  http_socket: {sock}\n"
                    f"upstream:\n  url: {url}\n  ca_file: {self.ca}\n{extra_upstream}"
                    + (f"state_dir: {self.work}/{name}-state\n" if state else "")
                    + f"accounts:\n  bench:\n    username: bench\n    password_file: {self.work}/password\n"
                    + ("    expire_on_shutdown: false\n" if state else "")
                    + "policy:\n  - {users: [root], accounts: ['*'], methods: ['*']}\n")
        if state:
            os.makedirs(f"{self.work}/{name}-state", mode=0o700, exist_ok=True)
        return self.start_broker(name, conf), sock

    def start_broker(self, name, conf):
        log = f"{self.work}/{name}.log"
        start = os.path.getsize(log) if os.path.exists(log) else 0
        proc = subprocess.Popen([f"{self.build}/daemon/stormbrokerd", "--config", conf], stderr=open(log, "a"))
        self.procs.append(proc)
        for _ in range(200):
            with open(log) as f:
                f.seek(start)
                if "ready" in f.read():
                    break
            time.sleep(0.05)
        return proc

    def restart_and_call(self, name, proc, sock):
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        self.start_broker(name, f"{self.work}/{name}.yaml")
        return curl_ms(door(sock))

    def stop(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def curl_ms(args):
    """One call by a curl process; its time_total in ms (None on failure)."""
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total}"] + args,
                         capture_output=True, text=True)
    try:
        code, seconds = out.stdout.split()
        return round(float(seconds) * 1000, 2) if code == "200" else None
    except ValueError:
        return None


def door(sock, method="Utilities/Info/ping"):
    return ["--unix-socket", sock, "-u", "bench:x", "-d", PING, f"http://broker/v1/{method}"]


def burst(args, n=32):
    """`n` calls at once, each on a connection of its own, from one curl
    (--parallel): 32 processes starting together would measure the 2-core
    machine's process start-up, not the distance."""
    *options, url = args
    argv = ["curl", "-s", "--parallel", "--parallel-immediate", "--parallel-max", str(n),
            "-w", "%{http_code} %{time_total}\n"] + options
    for _ in range(n):
        argv += [url, "-o", "/dev/null"]
    lines = subprocess.run(argv, capture_output=True, text=True).stdout.split("\n")
    ok = sorted(round(float(t) * 1000, 2) for code, t in (line.split() for line in lines if line) if code == "200")
    return {"p50_ms": statistics.median(ok) if ok else None, "max_ms": max(ok) if ok else None,
            "failed": n - len(ok)}


def warm(args, n=5):
    curl_ms(args)
    return statistics.median(t for t in (curl_ms(args) for _ in range(n)) if t is not None)


def sporadic(args, rounds):
    times = []
    for _ in range(rounds):
        time.sleep(QUIET_S)
        times.append(curl_ms(args))
    ok = [t for t in times if t is not None]
    return statistics.median(ok) if ok else None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build")
    parser.add_argument("work")
    parser.add_argument("--rtt-ms", type=float, default=20)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds = 2 if args.quick else 3
    b = Bench(args.build, args.work, args.rtt_ms)
    out = {"rtt_ms": args.rtt_ms}
    try:
        tls_storm = b.storm("storm-tls", plain=False)
        far = b.delay("far", tls_storm)  # the API, 1 RTT away, over HTTPS
        far_url = f"https://127.0.0.1:{far}/v1"
        plain_storm = b.storm("storm-plain", plain=True)
        # An HTTP/2 front (nginx, TLS) before the plain emulator, 1 RTT away.
        h2_port = free_port()
        b.nginx("h2front", f"  keepalive_timeout 5s;\n  upstream storm {{ server {plain_storm}; keepalive 64; }}\n"
                           f"  server {{ listen 127.0.0.1:{h2_port} ssl http2;\n"
                           f"    ssl_certificate {b.work}/certs/server.pem; ssl_certificate_key {b.work}/certs/server.key;\n"
                           "    location / { proxy_pass http://storm; proxy_http_version 1.1;"
                           " proxy_set_header Connection \"\"; } }")
        time.sleep(0.3)
        far_h2 = b.delay("far-h2", f"127.0.0.1:{h2_port}")
        far_h2_url = f"https://127.0.0.1:{far_h2}/v1"

        # The broker, keep_warm off (the default), holding its token across restarts.
        cold, cold_sock = b.broker("cold", far_url, state=True)
        out["broker_warm_ms"] = warm(door(cold_sock))
        out["broker_sporadic_ms"] = sporadic(door(cold_sock), rounds)
        time.sleep(QUIET_S)
        before = b.connections("far")
        out["broker_burst32_after_quiet"] = burst(door(cold_sock))
        out["broker_burst32_after_quiet"]["connections_opened"] = b.connections("far") - before
        # A restart (systemctl restart: it returns at READY) with the kept
        # token, then the first call.
        out["broker_first_call_after_restart_ms"] = b.restart_and_call("cold", cold, cold_sock)

        # keep_warm on: a sporadic call finds its connection open, and READY
        # waits for the API's first answer.
        warm_broker, warm_sock = b.broker("warm", far_url, "  keep_warm: {connections: 2, warm_for: 10m}\n",
                                          state=True)
        out["keep_warm_warm_ms"] = warm(door(warm_sock))
        out["keep_warm_sporadic_ms"] = sporadic(door(warm_sock), rounds)
        out["keep_warm_first_call_after_restart_ms"] = b.restart_and_call("warm", warm_broker, warm_sock)

        # HTTP/2: a burst after quiet shares one connection (keep_warm on).
        _, h2_sock = b.broker("h2", far_h2_url, "  keep_warm: {connections: 1, warm_for: 10m}\n")
        out["h2_warm_ms"] = warm(door(h2_sock))
        time.sleep(QUIET_S)
        before = b.connections("far-h2")
        out["h2_burst32_after_quiet"] = burst(door(h2_sock))
        out["h2_burst32_after_quiet"]["connections_opened"] = b.connections("far-h2") - before
        out["h2_connections_total"] = b.connections("far-h2")

        # Without the broker: curl to the API with the password, a token, the
        # token dance per process.
        direct = [f"{far_url}/Utilities/Info/ping", "--cacert", b.ca, "-d", PING]
        out["curl_direct_password_ms"] = statistics.median(
            curl_ms(["-u", f"bench:{PASSWORD}"] + direct) for _ in range(rounds))
        token = json.loads(subprocess.run(
            ["curl", "-s", "--cacert", b.ca, "-u", f"bench:{PASSWORD}", "-d", '{"params": {"timeout": 3600}}',
             f"{far_url}/Account/Auth/token"], capture_output=True, text=True).stdout)["token"]
        out["curl_direct_token_ms"] = statistics.median(curl_ms(["-u", f"bench:{token}"] + direct)
                                                        for _ in range(rounds))
        dance = []
        for _ in range(rounds):
            login = curl_ms(["--cacert", b.ca, "-u", f"bench:{PASSWORD}", "-d", PING,
                             f"{far_url}/Account/Auth/token"])
            call = curl_ms(["-u", f"bench:{token}"] + direct)
            dance.append(login + call)
        out["token_dance_per_process_ms"] = statistics.median(dance)

        # nginx injecting the token, keeping its upstream connections alive.
        import base64
        basic = base64.b64encode(f"bench:{token}".encode()).decode()
        nginx_sock = f"{b.work}/nginx-inject.sock"
        b.nginx("inject", f"  upstream api {{ server 127.0.0.1:{far}; keepalive 16; keepalive_timeout 60s; }}\n"
                          f"  server {{ listen unix:{nginx_sock};\n"
                          f"    location /v1/ {{ proxy_pass https://api; proxy_http_version 1.1;"
                          f" proxy_set_header Connection \"\"; proxy_set_header Authorization \"Basic {basic}\";"
                          f" proxy_ssl_trusted_certificate {b.ca}; proxy_ssl_verify on; proxy_ssl_name localhost;"
                          " proxy_ssl_session_reuse on; } }")
        time.sleep(0.3)
        inject = ["--unix-socket", nginx_sock, "-d", PING, "http://nginx/v1/Utilities/Info/ping"]
        out["nginx_inject_warm_ms"] = warm(inject)
        out["nginx_inject_sporadic_ms"] = sporadic(inject, rounds)
    finally:
        b.stop()
    rtt = args.rtt_ms
    w = out["broker_warm_ms"]
    out["targets"] = {
        "keep_warm_sporadic_at_most_1.2x_warm": out["keep_warm_sporadic_ms"] <= 1.2 * out["keep_warm_warm_ms"],
        "h2_burst_after_quiet_at_most_1.5x_warm": out["h2_burst32_after_quiet"]["p50_ms"] <= 1.5 * out["h2_warm_ms"],
        "h2_burst_one_connection": out["h2_connections_total"] <= 1 + 1,  # the login's, then the kept one
        "broker_warm_at_most_0.4x_curl_direct": w <= 0.4 * out["curl_direct_password_ms"],
        "first_call_after_restart_within_1_rtt_of_warm":
            out["keep_warm_first_call_after_restart_ms"] <= out["keep_warm_warm_ms"] + rtt,
    }
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
