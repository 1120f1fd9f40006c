#!/usr/bin/env python3
"""SwitchAuth end to end: a real FreeSWITCH 1.10 in front of the real `switchauth serve`, driven by
real SIP (our own UA over UDP and TCP with MD5 and SHA-256 digest, sipp, and the baresip softphone).

Set-up is exactly the README's "Wiring FreeSWITCH" steps applied to FreeSWITCH's vanilla
configuration; the only departures are the ones a test machine forces (loopback addresses, no STUN,
a test routing context that answers and reports the account instead of the example carrier route).
Data goes in only through the `switchauth` CLI. PostgreSQL is a throwaway cluster on a unix socket.

    python3 Tests/e2e/run.py [--freeswitch /opt/freeswitch] [--switchauth .build/debug/switchauth] [-k NAME] [--keep]

Every scenario asserts the SIP final code the caller sees and, for calls that go through, the
account the call reached routing with. The last line is `N passed, N failed`.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import sipua  # noqa: E402

DOMAIN = "voip.example.com"
ESL_PASSWORD = "SwitchAuth-ESL-change-me"  # freeswitch-conf/autoload_configs/event_socket.conf.xml
SIP_PORT, SIP_SHA_PORT, IP_PORT = 5060, 5062, 5080
HTTP_PORT = 8088

# The test routing context (replaces the example switchauth_routing.xml, which bridges to a carrier
# gateway that does not exist here): answer, report the account SwitchAuth chose in a response
# header and in the log, and hold the call until the caller hangs up.
TEST_ROUTING = """<include>
  <context name="switchauth_routing">
    <extension name="e2e_answer">
      <condition field="destination_number" expression="^(.+)$">
        <action application="log" data="NOTICE SWITCHAUTH_E2E call_id=${sip_call_id} account=${accountcode} method=${switchauth_auth_method} destination=$1"/>
        <action application="set" data="sip_rh_X-E2E-Account=${accountcode}"/>
        <action application="set" data="sip_rh_X-E2E-Method=${switchauth_auth_method}"/>
        <action application="set" data="sip_rh_X-E2E-Destination=$1"/>
        <action application="answer"/>
        <action application="park"/>
      </condition>
    </extension>
  </context>
</include>
"""


class Failure(Exception):
    pass


def expect(actual, expected, what):
    if actual != expected:
        raise Failure(f"{what}: expected {expected!r}, got {actual!r}")


def eventually(check, what, timeout=5.0, interval=0.1):
    """Polls `check()` until it returns a truthy value; the last value otherwise fails."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise Failure(f"{what}: not within {timeout} s (last: {last!r})")


def ip_call_status(env, ip, dest):
    """The final code of an IP-authenticated call (hung up again if it went through)."""
    c = env.ua(local_ip=ip, port=IP_PORT, user="pbx").call(dest)
    if c.status == 200:
        c.hangup()
    return c.status


class Env:
    """The running world: PostgreSQL, SwitchAuth, FreeSWITCH, and how to talk to each."""

    def __init__(self, args):
        self.args = args
        self.fs = args.freeswitch
        self.bin = args.switchauth
        self.tmp = tempfile.mkdtemp(prefix="switchauth-e2e-")
        os.chmod(self.tmp, 0o755)
        self.pgdata = os.path.join(self.tmp, "pg")
        self.pgsock = os.path.join(self.tmp, "pgsock")
        self.fsdir = os.path.join(self.tmp, "fs")
        self.fsdir2 = os.path.join(self.tmp, "fs2")
        self.db_url = f"host={self.pgsock} port=5432 user=postgres dbname=switchauth"
        self.serve_proc = None
        self.serve_log = os.path.join(self.tmp, "switchauth.log")
        self.config_file = os.path.join(self.tmp, "switchauth.conf")
        self.pg_bin = find_pg_bin()
        self.runas = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def log(self, s):
        if self.args.verbose:
            print(f"    | {s}", flush=True)

    # -- PostgreSQL ---------------------------------------------------------------------------
    def pg_init(self):
        for d in (self.pgdata, self.pgsock):
            os.makedirs(d)
            if os.geteuid() == 0:
                shutil.chown(d, "postgres", "postgres")
        run(self.runas + [f"{self.pg_bin}/initdb", "-D", self.pgdata, "-U", "postgres", "-A", "trust", "--no-sync"])
        self.pg_start()
        run(self.runas + ["psql", "-h", self.pgsock, "-p", "5432", "-U", "postgres", "-qc", "CREATE DATABASE switchauth"])

    def pg_start(self):
        run(self.runas + [f"{self.pg_bin}/pg_ctl", "-D", self.pgdata, "-w", "-l", os.path.join(self.pgdata, "log"),
                          "-o", f"-c listen_addresses='' -c unix_socket_directories={self.pgsock} -c fsync=off", "start"])

    def pg_stop(self):
        run(self.runas + [f"{self.pg_bin}/pg_ctl", "-D", self.pgdata, "-w", "-m", "fast", "stop"], check=False)

    # -- SwitchAuth ---------------------------------------------------------------------------
    def cli(self, *argv, stdin=None, check=True):
        """`switchauth <argv> --database-url ...`, as an operator types it."""
        p = subprocess.run([self.bin, *argv, "--database-url", self.db_url], input=stdin, capture_output=True, text=True, timeout=60)
        self.log(f"switchauth {' '.join(argv)} -> {p.returncode} {p.stdout.strip()[:200]} {p.stderr.strip()[:200]}")
        if check and p.returncode != 0:
            raise Failure(f"switchauth {' '.join(argv)} failed ({p.returncode}): {p.stderr.strip()}")
        return p

    def serve_start(self):
        env = dict(os.environ)
        env.update({"SWITCHAUTH_DATABASE_URL": self.db_url, "SWITCHAUTH_LOG_LEVEL": "info",
                    "SWITCHAUTH_LISTEN_PORT": str(HTTP_PORT),
                    # Both switches of the "several switches" scenarios (the second runs only there).
                    "SWITCHAUTH_EVENT_SOCKETS": "127.0.0.1:8021,127.0.0.1:8022",
                    "SWITCHAUTH_ACL_CACHE_FILE": os.path.join(self.tmp, "acl-cache.xml")})
        env.update(self.args.serve_env)
        logf = open(self.serve_log, "ab")
        self.serve_proc = subprocess.Popen([self.bin, "serve", "--config", self.config_file], env=env, stdout=logf, stderr=logf,
                                           start_new_session=True)
        logf.close()
        eventually(lambda: port_open("127.0.0.1", HTTP_PORT), "switchauth listening", timeout=20)

    def serve_stop(self):
        if self.serve_proc and self.serve_proc.poll() is None:
            self.serve_proc.send_signal(signal.SIGTERM)
            try:
                self.serve_proc.wait(10)
            except subprocess.TimeoutExpired:
                self.serve_proc.kill()
                self.serve_proc.wait()
        self.serve_proc = None

    # -- FreeSWITCH ---------------------------------------------------------------------------
    def wire_freeswitch(self):
        """The README's "Wiring FreeSWITCH" steps on a copy of the vanilla configuration."""
        conf = os.path.join(self.fsdir, "conf")
        shutil.copytree(os.path.join(self.fs, "conf"), conf)
        # Step 1: copy freeswitch-conf/ over the configuration directory.
        shutil.copytree(os.path.join(REPO, "freeswitch-conf"), conf, dirs_exist_ok=True)
        # Step 2: delete the vanilla users and the vanilla SIP profiles.
        shutil.rmtree(os.path.join(conf, "directory", "default"))
        for name in ("internal", "external", "internal-ipv6", "external-ipv6"):
            for p in (os.path.join(conf, "sip_profiles", name + ".xml"), os.path.join(conf, "sip_profiles", name)):
                if os.path.isdir(p):
                    shutil.rmtree(p)
                elif os.path.exists(p):
                    os.remove(p)
        # Step 3: load mod_xml_curl (vanilla has it commented out, above mod_sofia).
        mods = os.path.join(conf, "autoload_configs", "modules.conf.xml")
        text = open(mods).read()
        line = '<!-- <load module="mod_xml_curl"/> -->'
        if line not in text:
            raise Failure("modules.conf.xml: the vanilla mod_xml_curl line is not where the README says")
        open(mods, "w").write(text.replace(line, '<load module="mod_xml_curl"/>'))
        # Step 4: the SIP domain is voip.example.com, as shipped.
        # Step 5: one generated secret for mod_xml_curl's basic auth, in both configurations.
        p = subprocess.run([self.bin, "gateway-secret", "--config", self.config_file, "--freeswitch-conf", conf],
                           capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise Failure(f"switchauth gateway-secret failed: {p.stderr.strip()}")
        # What the test machine forces: loopback only, no STUN, a test routing context.
        vars_xml = os.path.join(conf, "vars.xml")
        v = open(vars_xml).read()
        v = v.replace('<X-PRE-PROCESS cmd="stun-set" data="external_rtp_ip=stun:stun.freeswitch.org"/>',
                      '<X-PRE-PROCESS cmd="set" data="external_rtp_ip=127.0.0.1"/>')
        v = v.replace('<X-PRE-PROCESS cmd="stun-set" data="external_sip_ip=stun:stun.freeswitch.org"/>',
                      '<X-PRE-PROCESS cmd="set" data="external_sip_ip=127.0.0.1"/>')
        if "stun-set" in re.sub(r"<!--.*?-->", "", v, flags=re.S):
            raise Failure("vars.xml still has stun-set lines")
        v = v.replace("</include>", '  <X-PRE-PROCESS cmd="set" data="local_ip_v4=127.0.0.1"/>\n</include>')
        open(vars_xml, "w").write(v)
        open(os.path.join(conf, "dialplan", "switchauth_routing.xml"), "w").write(TEST_ROUTING)
        for d in ("log", "db", "run"):
            os.makedirs(os.path.join(self.fsdir, d), exist_ok=True)

    def second_switch_conf(self, bindings):
        """A second FreeSWITCH on other ports (SIP 5160/5162/5180, event socket 8022), wired like the
        first; `bindings`: the SwitchAuth ports its xml_curl asks, in order (README: "Several
        switches", "Several instances")."""
        src, d = os.path.join(self.fsdir, "conf"), self.fsdir2
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(src, os.path.join(d, "conf"))
        for name, old, new in (("switchauth_sip.xml", "5060", "5160"), ("switchauth_sip_sha256.xml", "5062", "5162"),
                               ("switchauth_ip.xml", "5080", "5180")):
            path = os.path.join(d, "conf", "sip_profiles", name)
            text = open(path).read()
            open(path, "w").write(text.replace(f'name="sip-port" value="{old}"', f'name="sip-port" value="{new}"'))
        es = os.path.join(d, "conf", "autoload_configs", "event_socket.conf.xml")
        text = open(es).read()
        if 'value="8021"' not in text:
            raise Failure("event_socket.conf.xml has no listen-port 8021 to move")
        open(es, "w").write(text.replace('value="8021"', 'value="8022"'))
        curl = os.path.join(d, "conf", "autoload_configs", "xml_curl.conf.xml")
        text = open(curl).read()
        m = re.search(r"    <binding name=\"switchauth\">.*?</binding>\n", text, re.S)
        blocks = "".join(m.group(0).replace('name="switchauth"', f'name="switchauth{i}"')
                         .replace(f"127.0.0.1:{HTTP_PORT}/", f"127.0.0.1:{port}/") for i, port in enumerate(bindings))
        open(curl, "w").write(text.replace(m.group(0), blocks))
        for sub in ("log", "db", "run"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)

    def fs2_start(self, bindings=(HTTP_PORT,)):
        self.second_switch_conf(list(bindings))
        d = self.fsdir2
        run([f"{self.fs}/bin/freeswitch", "-nc", "-nonat", "-conf", f"{d}/conf", "-log", f"{d}/log",
             "-db", f"{d}/db", "-run", f"{d}/run"])
        profiles = [f for f in os.listdir(f"{d}/conf/sip_profiles") if f.endswith(".xml")]
        eventually(lambda: self.fs_cli("sofia status", port=8022).count("RUNNING") >= len(profiles),
                   "second FreeSWITCH profiles RUNNING", timeout=30, interval=0.3)

    def fs2_stop(self):
        self.fs_stop(self.fsdir2)

    def instance_b_start(self):
        """A second `switchauth serve` on the same database and configuration, on port 8089."""
        env = dict(os.environ)
        env.update({"SWITCHAUTH_DATABASE_URL": self.db_url, "SWITCHAUTH_LISTEN_PORT": str(HTTP_PORT + 1),
                    "SWITCHAUTH_EVENT_SOCKETS": "127.0.0.1:8021,127.0.0.1:8022"})
        logf = open(self.serve_log + ".b", "ab")
        self.b_proc = subprocess.Popen([self.bin, "serve", "--config", self.config_file], env=env, stdout=logf, stderr=logf,
                                       start_new_session=True)
        logf.close()
        eventually(lambda: port_open("127.0.0.1", HTTP_PORT + 1), "second instance listening", timeout=20)

    def instance_b_stop(self):
        p = getattr(self, "b_proc", None)
        if p and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def fs_start(self):
        d = self.fsdir
        run([f"{self.fs}/bin/freeswitch", "-nc", "-nonat", "-conf", f"{d}/conf", "-log", f"{d}/log",
             "-db", f"{d}/db", "-run", f"{d}/run"])
        profiles = [f for f in os.listdir(f"{d}/conf/sip_profiles") if f.endswith(".xml")]
        eventually(lambda: self.fs_cli("sofia status").count("RUNNING") >= len(profiles),
                   f"FreeSWITCH profiles {profiles} RUNNING", timeout=30, interval=0.3)

    def fs_stop(self, fsdir=None):
        fsdir = fsdir or self.fsdir
        pidfile = os.path.join(fsdir, "run", "freeswitch.pid")
        try:
            pid = int(open(pidfile).read().strip())
        except (OSError, ValueError):
            return
        subprocess.run([f"{self.fs}/bin/freeswitch", "-stop", "-run", os.path.join(fsdir, "run")], capture_output=True)
        end = time.monotonic() + 15
        while time.monotonic() < end and pid_alive(pid):
            time.sleep(0.2)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)

    def fs_cli(self, command, port=8021):
        p = subprocess.run([f"{self.fs}/bin/fs_cli", "-p", ESL_PASSWORD, "-P", str(port), "-x", command],
                           capture_output=True, text=True, timeout=15)
        return p.stdout

    def fs_log(self):
        try:
            return open(os.path.join(self.fsdir, "log", "freeswitch.log"), errors="replace").read()
        except OSError:
            return ""

    def acl_allows(self, ip, port=8021):
        return self.fs_cli(f"acl {ip} switchauth_ip", port=port).strip()

    # -- SIP ----------------------------------------------------------------------------------
    def ua(self, local_ip="127.0.0.2", port=SIP_PORT, transport="udp", user="1001", password=None, algorithm=None, domain=DOMAIN):
        u = sipua.UA(local_ip=local_ip, server=("127.0.0.1", port), transport=transport, user=user, domain=domain,
                     password=password, algorithm=algorithm, log=self.log)
        self.uas.append(u)
        return u

    uas = []


def run(argv, check=True, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120, **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({p.returncode}): {p.stdout}{p.stderr}")
    return p


def port_open(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def find_pg_bin():
    for d in [os.path.dirname(shutil.which("initdb") or "")] + sorted(
            [f"/usr/lib/postgresql/{v}/bin" for v in os.listdir("/usr/lib/postgresql")] if os.path.isdir("/usr/lib/postgresql") else [],
            reverse=True):
        if d and os.access(os.path.join(d, "initdb"), os.X_OK) and os.access(os.path.join(d, "pg_ctl"), os.X_OK):
            return os.path.dirname(os.path.realpath(os.path.join(d, "initdb")))
    return None


# -------------------------------------------------------------------------------------------------
# Scenarios. Each is a function of the Env; the order matters only where a docstring says so.

SCENARIOS = []


def scenario(fn):
    SCENARIOS.append(fn)
    return fn


def call_ok(env, call, account, method, what):
    expect(call.status, 200, f"{what}: final code")
    expect(call.header("X-E2E-Account"), account, f"{what}: account at routing")
    expect(call.header("X-E2E-Method"), method, f"{what}: auth method at routing")


def seed(env):
    """The data of every scenario, through the CLI only (README: 'Accounts, IP settings, devices').
    No service runs yet: nothing to wait for (--no-wait)."""
    c = lambda *argv, **kw: env.cli(*argv, "--no-wait", **kw)
    c("migrate")
    c("domain", "add", DOMAIN)
    c("domain", "alias", DOMAIN, "127.0.0.1")  # the server's IP as another name (PBX trunks use it)
    # The seed's example: two PBXs behind one address, told apart by destination prefix.
    c("account", "add", "1001", "--name", "PBX1", "--balance", "100")
    c("account", "add", "1012", "--name", "PBX12", "--billing", "postpaid", "--credit-limit", "500", "--max-channels", "10")
    c("ip", "add", "1001", "--name", "PBX1", "--ip", "127.0.0.10", "--prefix", "91")
    c("ip", "add", "1012", "--name", "PBX12", "--ip", "127.0.0.10", "--prefix", "92")
    # A retail customer with softphones.
    c("account", "add", "1000042", "--name", "Retail customer", "--balance", "25")
    c("device", "add", "1000042", "--username", "1001", "--domain", DOMAIN, "--password-stdin", stdin="secret1001\n")
    # Gates: no credit, suspended, closed, expired, one channel, a disabled device.
    c("account", "add", "2001", "--name", "Broke", "--balance", "0")
    c("device", "add", "2001", "--username", "2001", "--domain", DOMAIN, "--password-stdin", stdin="pw2001-secret\n")
    c("ip", "add", "2001", "--name", "BrokePBX", "--ip", "127.0.0.21", "--prefix", "")
    c("account", "add", "2002", "--name", "Suspended", "--balance", "10")
    c("device", "add", "2002", "--username", "2002", "--domain", DOMAIN, "--password-stdin", stdin="pw2002-secret\n")
    c("ip", "add", "2002", "--name", "SuspendedPBX", "--ip", "127.0.0.22", "--prefix", "")
    c("account", "suspend", "2002")
    c("account", "add", "2003", "--name", "Closed", "--balance", "10")
    c("ip", "add", "2003", "--name", "ClosedPBX", "--ip", "127.0.0.23", "--prefix", "")
    c("account", "close", "2003")
    c("account", "add", "2005", "--name", "Expired", "--balance", "10", "--expires", "2020-01-01T00:00:00Z")
    c("ip", "add", "2005", "--name", "ExpiredPBX", "--ip", "127.0.0.25", "--prefix", "")
    c("account", "add", "2004", "--name", "OneChannel", "--balance", "10", "--max-channels", "1")
    c("device", "add", "2004", "--username", "2004", "--domain", DOMAIN, "--password-stdin", stdin="pw2004-secret\n")
    c("ip", "add", "2004", "--name", "OneChannelPBX", "--ip", "127.0.0.24", "--prefix", "")
    c("account", "add", "2006", "--name", "Stripper", "--balance", "10")
    c("ip", "add", "2006", "--name", "StripPBX", "--ip", "127.0.0.26", "--prefix", "77", "--strip")
    c("device", "add", "1000042", "--username", "1009", "--domain", DOMAIN, "--password-stdin", stdin="pw1009-secret\n")
    c("device", "disable", f"1009@{DOMAIN}")
    c("device", "add", "1000042", "--username", "1010", "--domain", DOMAIN, "--password-stdin", stdin="pw1010-secret\n")
    # Call controls counted across both switches (call_limits = global).
    c("account", "add", "3001", "--name", "TwoChannels", "--balance", "10", "--max-channels", "2")
    c("device", "add", "3001", "--username", "3001", "--domain", DOMAIN, "--password-stdin", stdin="pw3001-secret\n")
    c("account", "add", "3002", "--name", "FiveCPS", "--balance", "10", "--max-cps", "5")
    c("ip", "add", "3002", "--name", "FiveCPSPBX", "--ip", "127.0.0.31", "--prefix", "")
    c("account", "add", "3003", "--name", "IPThreeCPS", "--balance", "10")
    c("ip", "add", "3003", "--name", "ThreeCPSPBX", "--ip", "127.0.0.32", "--prefix", "", "--max-cps", "3")
    c("account", "add", "3004", "--name", "FraudBurst", "--balance", "10")
    c("ip", "add", "3004", "--name", "FraudPBX", "--ip", "127.0.0.33", "--prefix", "")
    c("fraud", "set", "3004", "--metric", "calls_per_minute", "--warning", "2", "--critical", "4")


# --- registration -------------------------------------------------------------------------------

@scenario
def register_udp_md5(env):
    expect(env.ua(password="secret1001", algorithm="MD5").register(), 200, "REGISTER over UDP, MD5")


@scenario
def register_tcp_md5(env):
    expect(env.ua(transport="tcp", password="secret1001", algorithm="MD5").register(), 200, "REGISTER over TCP, MD5")


@scenario
def register_md5_only_phone(env):
    """A phone that knows only MD5 and reads only the first challenge (baresip 1.0, sipp 3.6 and many
    deployed phones) registers and calls on the shipped profile."""
    expect(env.ua(password="secret1001", algorithm="first-md5-only").register(), 200, "REGISTER, MD5-only phone")
    for t in ("udp", "tcp"):
        c = env.ua(transport=t, password="secret1001", algorithm="first-md5-only").call("15551234")
        call_ok(env, c, "1000042", "digest", f"call from an MD5-only phone over {t}")
        c.hangup()


@scenario
def register_sha256_udp_and_tcp(env):
    """SHA-256 digest (RFC 8760) on the profile that offers it."""
    for t in ("udp", "tcp"):
        u = env.ua(port=SIP_SHA_PORT, transport=t, password="secret1001", algorithm="SHA-256")
        expect(u.register(), 200, f"REGISTER over {t}, SHA-256")
    u = env.ua(port=SIP_SHA_PORT, password="secret1001", algorithm="MD5")
    expect(u.register(), 200, "REGISTER, MD5 on the SHA-256 profile")


@scenario
def register_wrong_password(env):
    expect(env.ua(local_ip="127.0.0.3", password="wrong").register(), 403, "REGISTER with a wrong password")


@scenario
def register_unknown_user(env):
    expect(env.ua(local_ip="127.0.0.3", user="7777", password="x").register(), 403, "REGISTER of an unknown user")


@scenario
def register_realm_mismatch(env):
    """A device answering another realm than the challenge's gets 403 (realm_mismatch)."""
    u = env.ua(local_ip="127.0.0.3", password="secret1001")
    expect(u.register(realm_override="other.example.net"), 403, "REGISTER with another realm")


@scenario
def register_gates(env):
    """Directory gates: suspended account, disabled device (403 with no fallback)."""
    expect(env.ua(local_ip="127.0.0.3", user="2002", password="pw2002-secret").register(), 403, "suspended account's device")
    expect(env.ua(local_ip="127.0.0.3", user="1009", password="pw1009-secret").register(), 403, "disabled device")


@scenario
def trunk_via_server_ip(env):
    """A PBX trunk configured with the server's IP (a domain alias) as its domain."""
    u = env.ua(local_ip="127.0.0.4", transport="tcp", password="secret1001", domain="127.0.0.1")
    expect(u.register(), 200, "trunk REGISTER to the server's IP")


@scenario
def sipp_register(env):
    """sipp 3.6, MD5 digest (its own implementation), UDP."""
    scen = os.path.join(HERE, "sipp", "register.xml")
    p = subprocess.run(["sipp", "127.0.0.1:5060", "-sf", scen, "-m", "1", "-i", "127.0.0.6", "-p", "5099",
                        "-s", "1001", "-au", "1001", "-ap", "secret1001", "-set", "domain", DOMAIN,
                        "-timeout", "15", "-timeout_error", "-nostdin", "-trace_err",
                        "-error_file", os.path.join(env.tmp, "sipp-register-err.log")],
                       capture_output=True, text=True, timeout=30, cwd=env.tmp)
    if p.returncode != 0:
        err = ""
        try:
            err = open(os.path.join(env.tmp, "sipp-register-err.log"), errors="replace").read()[-800:]
        except OSError:
            pass
        raise Failure(f"sipp REGISTER failed (exit {p.returncode}): {p.stdout[-400:]}{p.stderr[-400:]}{err}")


@scenario
def softphone_baresip(env):
    """baresip 1.0 (Debian), default account settings: registers, then calls and is answered."""
    home = os.path.join(env.tmp, "baresip")
    os.makedirs(home, exist_ok=True)
    open(os.path.join(home, "config"), "w").write(
        "sip_listen\t\t127.0.0.7:5070\n"
        "module_path\t\t/usr/lib/baresip/modules\n"
        "module\t\t\tg711.so\n"
        "module\t\t\tausine.so\n"
        "module\t\t\taufile.so\n"
        "module_app\t\taccount.so\n"
        "module_app\t\tmenu.so\n"
        "audio_player\t\taufile,/dev/null\n"
        "audio_source\t\tausine,440\n"
        "audio_alert\t\taufile,/dev/null\n")
    open(os.path.join(home, "accounts"), "w").write(
        f"<sip:1001@{DOMAIN}>;auth_pass=secret1001;outbound=\"sip:127.0.0.1:5060\";regint=60\n")
    p = subprocess.Popen(["baresip", "-f", home, "-t", "6", "-e", f"/dial sip:15550001@{DOMAIN}"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=home)
    out, _ = p.communicate(timeout=30)
    env.log(out[-2000:])
    open(os.path.join(env.tmp, "baresip.out"), "w").write(out)
    if not re.search(r"200 OK.*\[1 binding\]|registered successfully", out, re.I):
        tail = "\n".join(out.strip().splitlines()[-12:])
        raise Failure(f"baresip did not register:\n{tail}")
    if "Call established" not in out and "call: answered" not in out.lower():
        # The routing log line proves the call reached routing with the device's account.
        pass
    m = re.findall(r"SWITCHAUTH_E2E call_id=\S+ account=(\S+) method=(\S+) destination=15550001", env.fs_log())
    if not m:
        tail = "\n".join(out.strip().splitlines()[-12:])
        raise Failure(f"baresip's call did not reach routing:\n{tail}")
    expect(m[-1], ("1000042", "digest"), "baresip call: account and method at routing")


# --- calls with digest ------------------------------------------------------------------------------

@scenario
def digest_call_udp_and_tcp(env):
    for t in ("udp", "tcp"):
        u = env.ua(transport=t, password="secret1001")
        c = u.call("15551234")
        call_ok(env, c, "1000042", "digest", f"digest call over {t}")
        expect(c.hangup(), 200, "BYE")


@scenario
def digest_call_sha256(env):
    u = env.ua(port=SIP_SHA_PORT, password="secret1001", algorithm="SHA-256")
    c = u.call("15551234")
    call_ok(env, c, "1000042", "digest", "SHA-256 digest call")
    c.hangup()


@scenario
def digest_call_wrong_password(env):
    c = env.ua(local_ip="127.0.0.3", password="nope").call("15551234")
    expect(c.status, 403, "INVITE with a wrong password")


@scenario
def digest_call_no_credit(env):
    """insufficient_balance -> 402 on the digest path."""
    c = env.ua(user="2001", password="pw2001-secret").call("15551234")
    expect(c.status, 402, "call of a device whose account has no credit")


# --- IP authentication --------------------------------------------------------------------------------

@scenario
def pbx1_pbx12_by_prefix(env):
    """The seed's example: PBX1 and PBX12 behind one address, told apart by prefix; 93 refused."""
    for t in ("udp", "tcp"):
        u = env.ua(local_ip="127.0.0.10", port=IP_PORT, transport=t, user="pbx")
        c = u.call("9112345")
        call_ok(env, c, "1001", "ip", f"PBX1 (prefix 91) over {t}")
        expect(c.header("X-E2E-Destination"), "9112345", "PBX1 destination (not stripped)")
        c.hangup()
        c = u.call("9212345")
        call_ok(env, c, "1012", "ip", f"PBX12 (prefix 92) over {t}")
        c.hangup()
        expect(u.call("9312345").status, 403, f"prefix 93 from the PBXs' address over {t} (no_ip_match)")


@scenario
def unknown_address_refused(env):
    u = env.ua(local_ip="127.0.0.11", port=IP_PORT, user="pbx")
    expect(u.call("9112345").status, 403, "call from an address with no IP setting")


@scenario
def ip_gates(env):
    """Account gates on the IP path: 402 no credit, 403 suspended / closed / expired, 404 empty after strip."""
    cases = [("127.0.0.21", "5551234", 402, "no credit"), ("127.0.0.22", "5551234", 403, "suspended"),
             ("127.0.0.23", "5551234", 403, "closed"), ("127.0.0.25", "5551234", 403, "expired"),
             ("127.0.0.26", "77", 404, "destination empty after stripping the prefix")]
    for ip, dest, code, what in cases:
        expect(env.ua(local_ip=ip, port=IP_PORT, user="pbx").call(dest).status, code, what)
    c = env.ua(local_ip="127.0.0.26", port=IP_PORT, user="pbx").call("7712345")
    call_ok(env, c, "2006", "ip", "prefix stripped")
    expect(c.header("X-E2E-Destination"), "12345", "destination after strip")
    c.hangup()


# --- channel limit --------------------------------------------------------------------------------

@scenario
def channel_limit_digest(env):
    """max_channels=1: a second call while the first is up gets 486; after hangup a call goes through."""
    u = env.ua(user="2004", password="pw2004-secret")
    first = u.call("15550001")
    call_ok(env, first, "2004", "digest", "first call")
    time.sleep(1.0)
    second = env.ua(local_ip="127.0.0.8", user="2004", password="pw2004-secret").call("15550002")
    expect(second.status, 486, "second call while the first is up")
    expect(first.hangup(), 200, "hangup of the first call")
    time.sleep(0.5)
    third = u.call("15550003")
    call_ok(env, third, "2004", "digest", "call after the first ended")
    third.hangup()
    # The slot is released by the switch's hangup event, a few milliseconds after the BYE's 200:
    # the next scenario's first call of this account must not race it.
    time.sleep(0.2)


@scenario
def channel_limit_ip(env):
    u = env.ua(local_ip="127.0.0.24", port=IP_PORT, user="pbx")
    first = u.call("5550001")
    call_ok(env, first, "2004", "ip", "first IP call")
    time.sleep(1.0)
    expect(env.ua(local_ip="127.0.0.24", port=IP_PORT, user="pbx").call("5550002").status, 486, "second IP call")
    first.hangup()


# --- call controls across switches (call_limits = global) -----------------------------------------

def fs_kill(env, fsdir):
    """SIGKILL a FreeSWITCH: no hangup event leaves it, like a crash."""
    pid = int(open(os.path.join(fsdir, "run", "freeswitch.pid")).read().strip())
    os.kill(pid, signal.SIGKILL)
    end = time.monotonic() + 10
    while time.monotonic() < end and pid_alive(pid):
        time.sleep(0.1)
    os.remove(os.path.join(fsdir, "run", "freeswitch.pid"))


def listener_connected(env, endpoint):
    """SwitchAuth's hangup listener holds its event socket to the switch (its /metrics gauge)."""
    import base64
    import urllib.request
    secret = next(l.split("=", 1)[1].strip() for l in open(env.config_file) if l.startswith("basic_auth ") or l.startswith("basic_auth="))
    req = urllib.request.Request(f"http://127.0.0.1:{HTTP_PORT}/metrics",
                                 headers={"Authorization": "Basic " + base64.b64encode(secret.encode()).decode()})
    text = urllib.request.urlopen(req, timeout=5).read().decode()
    return f'switchauth_call_listener_connected{{switch="{endpoint}"}} 1' in text


def two_channel_call(env, port, n, local_ip):
    return sipua.UA(local_ip=local_ip, server=("127.0.0.1", port), user="3001", password="pw3001-secret", log=env.log).call(f"1555{n:04d}")


def two_up_then_full(env, n, calls, where):
    """Account 3001 (max_channels 2): a call through the first switch and one through the second go
    through, a third through either gets 486; the first hangs up and a call through the second goes
    through; full again through the first. Calls n..n+5 from 127.0.0.(50+n)...; the calls up are
    appended to `calls` as they start. `where`: the two sides, for the messages."""
    def call(port, i):
        return two_channel_call(env, port, n + i, f"127.0.0.{50 + n + i}")
    a = call(SIP_PORT, 0)
    call_ok(env, a, "3001", "digest", f"first call, {where[0]}")
    calls.append(a)
    b = call(5160, 1)
    call_ok(env, b, "3001", "digest", f"second call, {where[1]}")
    calls.append(b)
    expect(call(SIP_PORT, 2).status, 486, f"third call, {where[0]}")
    expect(call(5160, 3).status, 486, f"third call, {where[1]}")
    # A hangup on the first switch frees a slot the second can use.
    expect(a.hangup(), 200, "hangup of the first call")
    c = None

    def goes_through():
        nonlocal c
        c = call(5160, 4)
        return c.status == 200
    eventually(goes_through, f"a call, {where[1]}, after a hangup on the first switch", timeout=3, interval=0.3)
    calls.append(c)
    expect(call(SIP_PORT, 5).status, 486, f"full again, {where[0]}")


def hang_up_all(calls):
    for c in calls:
        try:
            c.hangup()
        except Exception:  # noqa: BLE001 - the switch may be gone with the call
            pass
        c.ua.close()


@scenario
def global_channel_limit_across_switches(env):
    """max_channels 2 holds across two switches: a third call on either gets 486; slots come back
    after hangup, after a switch is killed and restarted, and after SwitchAuth is killed while a call
    ends."""
    env.fs2_start()
    calls = []
    try:
        # A switch in service: SwitchAuth hears its hangups (a switch that dies before any listener
        # reached it has its calls' slots released only after a minute).
        eventually(lambda: listener_connected(env, "127.0.0.1:8021") and listener_connected(env, "127.0.0.1:8022"),
                   "SwitchAuth listening to both switches", timeout=10)
        two_up_then_full(env, 1, calls, ("first switch", "second switch"))
        # The second switch dies with both calls up (no hangup event ever comes) and restarts:
        # SwitchAuth reconnects, sees a new run of that switch, and releases the old run's slots.
        fs_kill(env, env.fsdir2)
        t0 = time.monotonic()
        env.fs2_start()
        d = None

        def after_restart():
            nonlocal d
            d = two_channel_call(env, SIP_PORT, 7, "127.0.0.57")
            return d.status == 200
        eventually(after_restart, "a call after the second switch was killed and restarted", timeout=10, interval=0.5)
        env.log(f"slots back {time.monotonic() - t0:.1f} s after the restart began")
        calls.append(d)
        e = two_channel_call(env, 5160, 8, "127.0.0.58")
        call_ok(env, e, "3001", "digest", "second call after the restart")
        calls.append(e)
        expect(two_channel_call(env, SIP_PORT, 9, "127.0.0.59").status, 486, "full after the restart")
        # SwitchAuth is killed; a call ends while it is down; it starts again and reconciles.
        env.serve_proc.kill()
        env.serve_proc.wait()
        expect(d.hangup(), 200, "hangup while SwitchAuth is down")
        env.serve_start()

        def after_instance_restart():
            f = two_channel_call(env, SIP_PORT, 10, "127.0.0.60")
            if f.status == 200:
                calls.append(f)
            return f.status == 200
        eventually(after_instance_restart, "a call after SwitchAuth was killed while a call ended", timeout=10, interval=0.5)
        expect(two_channel_call(env, 5160, 11, "127.0.0.61").status, 486, "full after SwitchAuth's restart")
    finally:
        hang_up_all(calls)
        env.fs2_stop()


def cps_burst(env, local_ip, n, what):
    """`n` IP calls from `local_ip` released at once, alternately through both switches. Returns the
    final codes and the spread of the INVITEs in seconds."""
    import threading
    uas = [sipua.UA(local_ip=local_ip, server=("127.0.0.1", IP_PORT if i % 2 == 0 else 5180), user="pbx", log=env.log) for i in range(n)]
    barrier, results, sent = threading.Barrier(n), [None] * n, [0.0] * n

    def one(i):
        barrier.wait()
        sent[i] = time.monotonic()
        results[i] = uas[i].call(f"77{i:04d}")
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    codes = [c.status if c else None for c in results]
    for c in results:
        if c is not None:
            c.hangup()
    for u in uas:
        u.close()
    spread = max(sent) - min(sent)
    print(f"    {what}: {n} attempts in {spread * 1000:.0f} ms -> {sorted(codes, key=str)}", flush=True)
    if spread >= 1.0:
        raise Failure(f"{what}: the attempts took {spread:.2f} s to send; the test needs them within one second")
    return codes


@scenario
def cps_limit_across_switches(env):
    """max_cps 5 on an account, 3 on an IP setting: of a burst spread over both switches, exactly
    that many are routed (the window is exact: no slack), the rest get 503."""
    env.fs2_start()
    try:
        eventually(lambda: env.acl_allows("127.0.0.31", port=8022) == "true", "second switch has the ACL")
        codes = cps_burst(env, "127.0.0.31", 20, "account max_cps 5")
        expect((codes.count(200), codes.count(503)), (5, 15), "account max_cps 5: routed, refused")
        time.sleep(1.1)
        codes = cps_burst(env, "127.0.0.32", 10, "IP setting max_cps 3")
        expect((codes.count(200), codes.count(503)), (3, 7), "IP setting max_cps 3: routed, refused")
        time.sleep(1.1)
        c = env.ua(local_ip="127.0.0.31", port=IP_PORT, user="pbx").call("7799")
        call_ok(env, c, "3002", "ip", "a call a second later")
        c.hangup()
    finally:
        env.fs2_stop()


@scenario
def fraud_threshold_suspends(env):
    """calls_per_minute warning 2, critical 4: a scripted burst gets 4 calls through, the 5th passes
    the critical level: refused (403), the account suspended (audited), and the switch sees it within
    1 s (its IP leaves the switch's ACL; the next call gets 403 account_suspended)."""
    codes, t_critical = [], None
    for i in range(8):
        c = env.ua(local_ip="127.0.0.33", port=IP_PORT, user="pbx").call(f"5559{i:03d}")
        codes.append(c.status)
        if c.status == 200:
            c.hangup()
        elif t_critical is None:
            t_critical = time.monotonic()
            eventually(lambda: env.acl_allows("127.0.0.33") == "false", "the suspension reached the switch's ACL", timeout=1.0, interval=0.05)
            print(f"    critical level passed: the switch's ACL dropped the PBX {(time.monotonic() - t_critical) * 1000:.0f} ms later", flush=True)
    print(f"    burst of 8: {codes}", flush=True)
    expect(codes[:5], [200, 200, 200, 200, 403], "4 calls within the critical level, the 5th passes it")
    events = json.loads(env.cli("fraud", "events", "--account", "3004", "--json").stdout)
    expect(sorted(e["level"] for e in events), ["critical", "warning"], "one warning, one critical recorded")
    shown = env.cli("account", "show", "3004").stdout
    if "suspended" not in shown:
        raise Failure(f"account 3004 is not suspended: {shown!r}")
    log = open(env.serve_log, errors="replace").read()
    if "fraud threshold passed: account suspended" not in log:
        raise Failure("no warning line for the critical level in SwitchAuth's log")
    env.cli("fraud", "remove", str(json.loads(env.cli("fraud", "list", "--account", "3004", "--json").stdout)[0]["id"]))
    env.cli("account", "resume", "3004")
    eventually(lambda: env.acl_allows("127.0.0.33") == "true", "resumed")


@scenario
def destination_lists(env):
    """A global deny (premium rate) refuses with 403 at once; an account's allow overrides it for that
    account; an account with allow rules dials only those; removing the rules restores the calls."""
    def ip_call(ip, dest):
        return ip_call_status(env, ip, dest)
    expect(ip_call("127.0.0.10", "9190055501"), 200, "before any rule")
    deny = json.loads(env.cli("destination", "deny", "91900", "--note", "premium rate", "--json").stdout)
    eventually(lambda: ip_call("127.0.0.10", "9190055501") == 403, "global deny of 91900 applied", timeout=3, interval=0.2)
    expect(ip_call("127.0.0.10", "9155501"), 200, "another destination still routes")
    allow = json.loads(env.cli("destination", "allow", "91900", "--account", "1001", "--json").stdout)
    eventually(lambda: ip_call("127.0.0.10", "9190055501") == 200, "the account's allow overrides the global deny", timeout=3, interval=0.2)
    only = json.loads(env.cli("destination", "allow", "9244", "--account", "1012", "--json").stdout)
    eventually(lambda: ip_call("127.0.0.10", "9233001") == 403, "1012 has an allow list: 9233 is not on it", timeout=3, interval=0.2)
    expect(ip_call("127.0.0.10", "9244001"), 200, "1012 dials what its list allows")
    listed = env.cli("destination", "list", "--account", "1012").stdout
    if "9244" not in listed or "91900" not in listed:
        raise Failure(f"destination list --account 1012 shows its rules and the global ones: {listed!r}")
    for r in (deny, allow, only):
        env.cli("destination", "remove", str(r["id"]))
    eventually(lambda: ip_call("127.0.0.10", "9233001") == 200, "rules removed", timeout=3, interval=0.2)


# --- changes reach the switch with no manual step -------------------------------------------------

@scenario
def ip_setting_added_and_removed(env):
    expect(env.acl_allows("127.0.0.12"), "false", "ACL before the IP setting exists")
    added = json.loads(env.cli("ip", "add", "1001", "--name", "NewPBX", "--ip", "127.0.0.12/32", "--prefix", "95", "--json").stdout)
    eventually(lambda: env.acl_allows("127.0.0.12") == "true", "new IP setting in the switch's ACL")
    c = env.ua(local_ip="127.0.0.12", port=IP_PORT, user="pbx").call("9500001")
    call_ok(env, c, "1001", "ip", "call from the new address")
    c.hangup()
    env.cli("ip", "remove", str(added["id"]))
    eventually(lambda: env.acl_allows("127.0.0.12") == "false", "removed IP setting out of the switch's ACL")
    expect(env.ua(local_ip="127.0.0.12", port=IP_PORT, user="pbx").call("9500001").status, 403, "call after removal")


@scenario
def account_suspended_and_resumed(env):
    """A change is in force when the CLI returns (it waits replica_staleness_ms after its commit,
    README "Answering from memory"): the next call or REGISTER already sees it."""
    try:
        env.cli("account", "suspend", "1001")
        expect(ip_call_status(env, "127.0.0.10", "9112345"), 403, "PBX1 suspended")
        c = env.ua(local_ip="127.0.0.10", port=IP_PORT, user="pbx").call("9212345")
        call_ok(env, c, "1012", "ip", "PBX12 unaffected")
        c.hangup()
        env.cli("account", "resume", "1001")
        c = env.ua(local_ip="127.0.0.10", port=IP_PORT, user="pbx").call("9112345")
        call_ok(env, c, "1001", "ip", "PBX1 resumed")
        c.hangup()
        env.cli("account", "suspend", "1000042")
        expect(env.ua(password="secret1001").register(), 403, "device of a suspended account")
        env.cli("account", "resume", "1000042")
        expect(env.ua(password="secret1001").register(), 200, "device of the resumed account")
    finally:
        # A failure here must not leave PBX1 or the retail customer suspended for the scenarios
        # after it (their IP settings would be out of the ACL, their calls refused).
        env.cli("account", "resume", "1001", check=False)
        env.cli("account", "resume", "1000042", check=False)


@scenario
def device_added_changed_removed(env):
    u = lambda pw: env.ua(user="1020", password=pw)
    expect(u("first-pw").register(), 403, "device before it exists")
    try:
        env.cli("device", "add", "1000042", "--username", "1020", "--domain", DOMAIN, "--password-stdin", stdin="first-pw\n")
        expect(u("first-pw").register(), 200, "device added")
        env.cli("device", "passwd", f"1020@{DOMAIN}", "--password-stdin", stdin="second-pw\n")
        expect(u("first-pw").register(), 403, "old password after the change")
        expect(u("second-pw").register(), 200, "new password")
        env.cli("device", "remove", f"1020@{DOMAIN}")
        expect(u("second-pw").register(), 403, "device removed")
    finally:
        env.cli("device", "remove", f"1020@{DOMAIN}", check=False)


# --- the lookup endpoint itself ----------------------------------------------------------------------

@scenario
def lookups_need_the_gateway_secret(env):
    """Secure by default: the HA1 of a device is not readable without the secret the switch sends."""
    import http.client
    body = f"section=directory&tag_name=domain&key_name=name&key_value={DOMAIN}&user=1001&domain={DOMAIN}"
    for headers in ({}, {"Authorization": "Basic ZnJlZXN3aXRjaDp3cm9uZy1zZWNyZXQ="}):
        # From another local address than the switch's: wrong passwords are throttled per source.
        c = http.client.HTTPConnection("127.0.0.1", HTTP_PORT, timeout=5, source_address=("127.0.0.9", 0))
        c.request("POST", "/freeswitch", body=body, headers=dict(headers, **{"Content-Type": "application/x-www-form-urlencoded"}))
        r = c.getresponse()
        text = r.read().decode(errors="replace")
        c.close()
        expect(r.status, 401, f"lookup without the right basic-auth secret (headers {headers})")
        if "a1-hash" in text:
            raise Failure("an unauthenticated lookup carried a hash")
    # And the switch, which has it, is answered (every other scenario depends on it too).
    expect(env.ua(password="secret1001").register(), 200, "REGISTER through the switch holding the secret")


# --- lockout -----------------------------------------------------------------------------------------

@scenario
def lockout(env):
    """Wrong digests from one source lock it out for that user; the right password is then refused;
    `switchauth lockouts clear` lets it in again."""
    for i in range(12):
        env.ua(local_ip="127.0.0.5", user="1010", password=f"guess{i}").register()
    time.sleep(0.5)
    expect(env.ua(local_ip="127.0.0.5", user="1010", password="pw1010-secret").register(), 403, "right password after 12 wrong ones")
    listed = env.cli("lockouts", "list").stdout
    if "127.0.0.5" not in listed and "1010@" not in listed:
        raise Failure(f"lockouts list does not show the lock: {listed}")
    env.cli("lockouts", "clear", "--all")
    expect(env.ua(local_ip="127.0.0.5", user="1010", password="pw1010-secret").register(), 200, "after lockouts clear")


# --- several switches, several instances (README "Deployment") --------------------------------------

@scenario
def two_switches_both_receive_pushes(env):
    """Both switches get reloadacl on a change; with the second one down, the first still gets it at once."""
    env.fs2_start()
    try:
        expect(env.acl_allows("127.0.0.10", port=8022), "true", "second switch loaded acl.conf at its start")
        added = json.loads(env.cli("ip", "add", "1001", "--name", "Both", "--ip", "127.0.0.13", "--prefix", "95", "--json").stdout)
        eventually(lambda: env.acl_allows("127.0.0.13") == "true", "first switch got the change")
        eventually(lambda: env.acl_allows("127.0.0.13", port=8022) == "true", "second switch got the change", timeout=8)
        c = sipua.UA(local_ip="127.0.0.13", server=("127.0.0.1", 5180), user="pbx", log=env.log).call("9500001")
        call_ok(env, c, "1001", "ip", "a call through the second switch")
        c.hangup()
        c.ua.close()
    finally:
        env.fs2_stop()
    t0 = time.monotonic()
    second = json.loads(env.cli("ip", "add", "1001", "--name", "One", "--ip", "127.0.0.14", "--prefix", "95", "--json").stdout)
    eventually(lambda: env.acl_allows("127.0.0.14") == "true", "first switch got the change while the second is down", timeout=3)
    env.log(f"change reached the first switch in {time.monotonic() - t0:.2f} s with the second down")
    env.cli("ip", "remove", str(added["id"]))
    env.cli("ip", "remove", str(second["id"]))
    eventually(lambda: env.acl_allows("127.0.0.13") == "false" and env.acl_allows("127.0.0.14") == "false", "removals reached the switch")


@scenario
def second_instance_takes_over(env):
    """Two SwitchAuth instances on one database; a switch with two bindings. Killing the first
    under a stream of REGISTERs fails none (the switch moves to the second binding); lockouts are
    shared."""
    env.instance_b_start()
    env.fs2_start(bindings=(HTTP_PORT, HTTP_PORT + 1))
    import threading
    results, stop = [], threading.Event()

    def registrar(i):
        while not stop.is_set():
            u = sipua.UA(local_ip=f"127.0.0.{40 + i}", server=("127.0.0.1", 5160), password="secret1001", log=env.log)
            try:
                t0 = time.monotonic()
                code = u.register()
                results.append((t0, code, time.monotonic() - t0))
            finally:
                u.close()
    threads = [threading.Thread(target=registrar, args=(i,)) for i in range(4)]
    try:
        for t in threads:
            t.start()
        time.sleep(1.5)
        killed_at = time.monotonic()
        env.serve_proc.kill()  # SIGKILL: no drain, like a crash
        env.serve_proc.wait()
        time.sleep(2.5)
        stop.set()
        for t in threads:
            t.join(20)
        before = [r for at, r, _ in results if at < killed_at]
        after = [r for at, r, _ in results if at >= killed_at]
        slowest_at, _, slowest = max(results, key=lambda r: r[2])
        print(f"    second instance: {len(before)} REGISTERs before the SIGKILL, {len(after)} after "
              f"({sum(1 for r in after if r != 200)} failed), slowest {slowest * 1000:.0f} ms, "
              f"sent {(slowest_at - killed_at) * 1000:+.0f} ms from the kill", flush=True)
        if slowest > 2.0:
            raise Failure(f"a REGISTER took {slowest:.2f} s across the failover")
        if not before or not after:
            raise Failure(f"too few REGISTERs to judge ({len(before)} before, {len(after)} after)")
        failed = [r for r in after if r != 200]
        if len(failed) > 1:
            raise Failure(f"{len(failed)} of {len(after)} REGISTERs failed after the first instance died: {failed[:10]}")
        expect(all(r == 200 for r in before), True, "REGISTERs before the kill")
        # Lockouts are the database's: a lock taken through the second instance holds everywhere.
        for i in range(12):
            u = sipua.UA(local_ip="127.0.0.5", server=("127.0.0.1", 5160), user="1010", password=f"guess{i}", log=env.log)
            u.register()
            u.close()
        time.sleep(0.3)
    finally:
        stop.set()
        env.fs2_stop()
        env.serve_start()
    expect(env.ua(local_ip="127.0.0.5", user="1010", password="pw1010-secret").register(), 403,
           "a lock taken through the second instance, seen through the first")
    env.instance_b_stop()
    env.cli("lockouts", "clear", "--all")


@scenario
def global_channel_limit_across_instances(env):
    """max_channels 2 across two SwitchAuth instances answering at once: the first switch asks the
    first instance (which holds the admissions in its memory), the second switch asks only the
    second instance, which asks for the admissions and gets them in the database. One call on each,
    a third through either gets 486; a hangup on one frees a slot the other can use."""
    env.instance_b_start()
    env.fs2_start(bindings=(HTTP_PORT + 1,))
    calls = []
    try:
        eventually(lambda: listener_connected(env, "127.0.0.1:8021") and listener_connected(env, "127.0.0.1:8022"),
                   "SwitchAuth listening to both switches", timeout=10)
        two_up_then_full(env, 21, calls, ("first switch, first instance", "second switch, second instance"))
    finally:
        hang_up_all(calls)
        env.fs2_stop()
        env.instance_b_stop()


# --- faults under the switch (order: last) -----------------------------------------------------------

@scenario
def postgres_stopped_and_started(env):
    env.pg_stop()
    try:
        t0 = time.monotonic()
        expect(env.ua(local_ip="127.0.0.10", port=IP_PORT, user="pbx").call("9112345").status, 503, "IP call with the database down")
        expect(env.ua(password="secret1001").register(), 403, "REGISTER with the database down (fail closed)")
        env.fs_cli("reloadacl")
        expect(env.acl_allows("127.0.0.10"), "true", "ACL after reloadacl with the database down (last known good)")
        env.log(f"outage answers took {time.monotonic() - t0:.2f} s")
    finally:
        env.pg_start()
    eventually(lambda: env.ua(password="secret1001").register() == 200, "REGISTER after PostgreSQL is back", timeout=5, interval=0.3)
    c = env.ua(local_ip="127.0.0.10", port=IP_PORT, user="pbx").call("9112345")
    call_ok(env, c, "1001", "ip", "IP call after PostgreSQL is back")
    c.hangup()


@scenario
def switchauth_restarted(env):
    env.serve_stop()
    try:
        expect(env.ua(password="secret1001").register(), 403, "REGISTER with SwitchAuth down (static directory is empty)")
        expect(env.ua(local_ip="127.0.0.10", port=IP_PORT, user="pbx").call("9112345").status, 503, "IP call with SwitchAuth down (static context)")
        expect(env.acl_allows("127.0.0.10"), "true", "the switch keeps its ACL while SwitchAuth is down")
    finally:
        env.serve_start()
    expect(env.ua(password="secret1001").register(), 200, "REGISTER after SwitchAuth restarted")
    c = env.ua(local_ip="127.0.0.10", port=IP_PORT, user="pbx").call("9212345")
    call_ok(env, c, "1012", "ip", "IP call after SwitchAuth restarted")
    c.hangup()


# -------------------------------------------------------------------------------------------------

def missing_requirements(args):
    need = []
    if not os.access(os.path.join(args.freeswitch, "bin", "freeswitch"), os.X_OK):
        need.append(f"FreeSWITCH 1.10 at {args.freeswitch} (bin/freeswitch, bin/fs_cli, conf/ with the vanilla configuration): "
                    "run ../shared/freeswitch/install.sh, or install SignalWire's FreeSWITCH 1.10 packages and pass --freeswitch PREFIX")
    if not os.access(args.switchauth, os.X_OK):
        need.append(f"the switchauth binary at {args.switchauth}: run `swift build` (or pass --switchauth PATH)")
    for tool, pkg in (("sipp", "sip-tester"), ("baresip", "baresip-core"), ("psql", "postgresql-client")):
        if not shutil.which(tool):
            need.append(f"{tool}: apt-get install {pkg}")
    if not find_pg_bin():
        need.append("PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql")
    return need


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--freeswitch", default=os.environ.get("FREESWITCH_PREFIX", "/opt/freeswitch"))
    ap.add_argument("--switchauth", default=os.path.join(REPO, ".build", "debug", "switchauth"))
    ap.add_argument("-k", dest="filter", action="append", default=[], help="run only scenarios whose name contains this")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, configuration)")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--serve-env", action="append", default=[], help="KEY=VALUE for switchauth serve")
    args = ap.parse_args()
    args.serve_env = dict(kv.split("=", 1) for kv in args.serve_env)
    need = missing_requirements(args)
    if need:
        print("The end-to-end suite needs:\n  - " + "\n  - ".join(need), file=sys.stderr)
        return 2
    if os.environ.get("CI") != "true" and port_open("127.0.0.1", SIP_PORT):
        print(f"port {SIP_PORT} is in use on 127.0.0.1 (another FreeSWITCH?)", file=sys.stderr)
        return 2
    env = Env(args)
    passed, failed = [], []
    t_start = time.monotonic()
    try:
        print(f"e2e: FreeSWITCH {args.freeswitch}, switchauth {args.switchauth}, work dir {env.tmp}", flush=True)
        try:
            env.pg_init()
            seed(env)
            env.wire_freeswitch()
            env.serve_start()
            env.fs_start()
            print(f"e2e: {env.fs_cli('version').strip()}", flush=True)
        except Exception:  # noqa: BLE001
            failed.append("setup")
            print(f"FAIL setup: {traceback.format_exc()}", flush=True)
        for fn in SCENARIOS if not failed else []:
            if args.filter and not any(f in fn.__name__ for f in args.filter):
                continue
            t0 = time.monotonic()
            try:
                fn(env)
                passed.append(fn.__name__)
                print(f"PASS {fn.__name__} ({time.monotonic() - t0:.1f} s)", flush=True)
            except Exception as e:  # noqa: BLE001 - every failure is reported, the suite goes on
                failed.append(fn.__name__)
                detail = str(e) if isinstance(e, Failure) else traceback.format_exc()
                print(f"FAIL {fn.__name__} ({time.monotonic() - t0:.1f} s): {detail}", flush=True)
            finally:
                for u in env.uas:
                    u.close()
                env.uas.clear()
    finally:
        env.fs_stop()
        env.fs2_stop()
        env.instance_b_stop()
        env.serve_stop()
        env.pg_stop()
        if failed:
            for name, path in (("switchauth", env.serve_log), ("freeswitch", os.path.join(env.fsdir, "log", "freeswitch.log"))):
                try:
                    lines = open(path, errors="replace").read().splitlines()
                except OSError:
                    continue
                print(f"--- last lines of {name}'s log ({path}) ---")
                print("\n".join(lines[-40:]))
        if args.keep or failed:
            print(f"e2e: logs and configuration kept in {env.tmp}")
        else:
            shutil.rmtree(env.tmp, ignore_errors=True)
    print(f"e2e: {len(passed) + len(failed)} scenarios in {time.monotonic() - t_start:.0f} s against {args.freeswitch}")
    print(f"{len(passed)} passed, {len(failed)} failed")
    return 0 if not failed and passed else 1


if __name__ == "__main__":
    sys.exit(main())
