#!/usr/bin/python3
"""The operators' console in a real browser: headless Chromium driven through WebDriver
(Debian: chromium, chromium-driver, python3-selenium) against `switchauth console` on a
throwaway PostgreSQL. Data is set up only through the switchauth CLI.

    /usr/bin/python3 Tests/browser/run.py [--switchauth .build/debug/switchauth] [--screenshots DIR]

Last line: "N passed, N failed". Exit 0 when all pass, 1 on a failure, 2 when something needed is missing.
"""
import argparse
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def missing(what):
    print(f"missing: {what}", file=sys.stderr)
    print("0 passed, 0 failed")
    sys.exit(2)


try:
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.chrome.service import Service
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:
    missing("python3-selenium (apt-get install python3-selenium; run with /usr/bin/python3)")


class Postgres:
    """A throwaway cluster on a unix socket in a private directory (no TCP), run as `postgres` when root."""

    def __init__(self):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]), reverse=True)
        if not bins:
            missing("PostgreSQL server binaries (apt-get install postgresql)")
        self.bin = os.path.dirname(bins[0])
        self.dir = tempfile.mkdtemp(prefix="switchauth-browser-pg-")
        self.data = os.path.join(self.dir, "data")
        self.prefix = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]
        self.run([f"{self.bin}/initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"])
        self.run([f"{self.bin}/pg_ctl", "-D", self.data, "-w", "-l", os.path.join(self.dir, "log"), "-o",
                  f"-c listen_addresses='' -c unix_socket_directories={self.dir} -c fsync=off", "start"])
        self.url = f"host={self.dir} port=5432 user=postgres dbname=postgres"

    def run(self, cmd):
        subprocess.run(self.prefix + cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self):
        subprocess.run(self.prefix + [f"{self.bin}/pg_ctl", "-D", self.data, "-m", "immediate", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Suite:
    def __init__(self, args):
        self.args = args
        self.passed = 0
        self.failed = 0
        self.shots = args.screenshots
        os.makedirs(self.shots, exist_ok=True)

    def cli(self, *argv, stdin=None):
        r = subprocess.run([self.args.switchauth, *argv, "--database-url", self.pg.url], input=stdin, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"switchauth {' '.join(argv)}: {r.stderr.strip()}")
        return r.stdout

    def start(self):
        self.pg = Postgres()
        self.cli("migrate")
        self.cli("domain", "add", "voip.example.com")
        self.cli("console", "create-admin", "admin", "--password-stdin", stdin="admin-password-1\n")
        self.cli("console", "add-operator", "viewer", "--role", "read-only", "--password-stdin", stdin="viewer-password-1\n")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.console = subprocess.Popen([self.args.switchauth, "console", "--database-url", self.pg.url, "--port", str(self.port)],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(100):
            try:
                urllib.request.urlopen(self.base + "/api/v1/health", timeout=1).read()
                break
            except Exception:
                time.sleep(0.1)
        else:
            raise RuntimeError("the console did not start")
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
        for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1000"]:
            options.add_argument(a)
        driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
        self.b = webdriver.Chrome(service=Service(driver_path), options=options)
        self.b.set_page_load_timeout(20)

    def stop(self):
        try:
            self.b.quit()
        except Exception:
            pass
        if getattr(self, "console", None):
            self.console.terminate()
            try:
                self.console.wait(5)
            except subprocess.TimeoutExpired:
                self.console.kill()
        if getattr(self, "pg", None):
            self.pg.stop()

    # helpers

    def go(self, path):
        self.b.get(self.base + path)

    def fill(self, form_id, **fields):
        form = self.b.find_element(By.ID, form_id)
        for name, value in fields.items():
            el = form.find_element(By.NAME, name)
            if el.tag_name == "select":
                el.find_element(By.CSS_SELECTOR, f"option[value='{value}']").click()
            elif el.get_attribute("type") == "checkbox":
                if el.is_selected() != bool(value):
                    el.click()
            else:
                el.clear()
                el.send_keys(value)
        return form

    def submit(self, form_id, **fields):
        form = self.fill(form_id, **fields)
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        self.wait_for_new_page(form)

    def wait_for_new_page(self, old_element):
        """Waits until the page that held `old_element` has been replaced (a form was answered)."""
        def gone(_):
            try:
                old_element.is_enabled()
                return False
            except WebDriverException:   # stale (newer chromedriver may say "no such element")
                return True
        WebDriverWait(self.b, 10).until(gone)
        WebDriverWait(self.b, 10).until(lambda d: d.execute_script("return document.readyState") == "complete")

    def text(self):
        return self.b.find_element(By.TAG_NAME, "body").text

    def shot(self, name):
        path = os.path.join(self.shots, name)
        self.b.save_screenshot(path)
        return path

    def check(self, name, fn):
        try:
            fn()
            self.passed += 1
            print(f"ok   {name}")
        except Exception:
            self.failed += 1
            print(f"FAIL {name}")
            traceback.print_exc()
            try:
                self.shot(f"failed-{name}.png")
            except Exception:
                pass

    # scenarios (in order: each builds on the previous)

    def login(self, name="admin", password="admin-password-1"):
        self.go("/accounts")
        assert "/login" in self.b.current_url, self.b.current_url
        self.submit("login-form", name=name, password=password)
        assert self.b.current_url.endswith("/accounts"), self.b.current_url
        assert name in self.b.find_element(By.ID, "who").text

    def add_account(self):
        self.submit("add-account", number="2001", name="Browser PBX <b>", balance="10", max_channels="2")
        assert self.b.current_url.endswith("/accounts/2001?notice=created"), self.b.current_url
        assert "Account created." in self.text()
        assert "Browser PBX <b>" in self.b.find_element(By.TAG_NAME, "h1").text   # shown as text, not markup

    def add_ip_setting(self):
        self.submit("add-ip", name="Browser PBX", network="203.0.113.50", prefix="95")
        assert "IP setting added." in self.text()
        rows = self.b.find_element(By.ID, "ip-settings").text
        assert "203.0.113.50/32" in rows and "95" in rows, rows

    def add_device(self):
        self.submit("add-device", username="2001", domain="voip.example.com", generate=True)
        password = self.b.find_element(By.ID, "generated-password").text
        assert len(password) == 20, password
        assert "2001@voip.example.com" in self.b.find_element(By.ID, "devices").text
        self.go("/accounts/2001")
        assert password not in self.b.page_source, "the generated password must be shown once"
        # The account page at a phone's width, and at a desktop's.
        self.b.set_window_size(412, 1400)
        self.shot("account-page-phone.png")
        self.b.set_window_size(1280, 1400)
        self.shot("account-page.png")
        self.b.set_window_size(1280, 1000)

    def audit_entry(self):
        link = self.b.find_element(By.LINK_TEXT, "Audit log")
        link.click()
        self.wait_for_new_page(link)
        table = self.b.find_element(By.ID, "audit").text
        for expected in ["console:admin", "2001@voip.example.com", "203.0.113.50/32 prefix '95'", "Browser PBX <b>"]:
            assert expected in table, (expected, table)
        assert "ha1" not in self.b.page_source
        self.shot("audit-log.png")

    def explain(self):
        link = self.b.find_element(By.LINK_TEXT, "Explain")
        link.click()
        self.wait_for_new_page(link)
        self.submit("explain-form", ip="203.0.113.50", destination="9512345")
        e = self.b.find_element(By.ID, "explanation").text
        assert "allowed" in e and "accountcode 2001" in e, e
        assert "chosen (longest prefix" in e, e
        self.shot("explain-page.png")
        self.submit("explain-form", ip="203.0.113.50", destination="9612345")
        e = self.b.find_element(By.ID, "explanation").text
        assert "403" in e and "no_ip_match" in e, e

    def csrf_refused(self):
        self.go("/accounts")
        # Remove the form's CSRF token, as a forged cross-site form would lack it.
        self.b.execute_script("document.querySelector('#add-account input[name=csrf]').remove()")
        self.submit("add-account", number="2002", name="Forged")
        assert "CSRF token is missing or wrong" in self.text(), self.text()
        self.go("/accounts?q=2002")
        assert "Forged" not in self.b.find_element(By.ID, "accounts").text

    def logout(self):
        button = self.b.find_element(By.CSS_SELECTOR, "header form button")
        button.click()
        self.wait_for_new_page(button)
        assert "/login" in self.b.current_url and "Logged out." in self.text(), self.b.current_url
        self.go("/accounts")
        assert "/login" in self.b.current_url

    def read_only_refused(self):
        self.login("viewer", "viewer-password-1")
        assert not self.b.find_elements(By.ID, "add-account"), "a read-only operator sees no change forms"
        # Post a change anyway, with the viewer's own valid CSRF token.
        old = self.b.find_element(By.ID, "who")
        self.b.execute_script("""
            var token = document.querySelector('header input[name=csrf]').value;
            var f = document.createElement('form'); f.method = 'post'; f.action = '/accounts/2001/status';
            [['csrf', token], ['status', 'closed']].forEach(function (kv) {
              var i = document.createElement('input'); i.type = 'hidden'; i.name = kv[0]; i.value = kv[1]; f.appendChild(i); });
            document.body.appendChild(f); f.submit();""")
        self.wait_for_new_page(old)
        assert "may not change anything" in self.text(), self.text()
        self.go("/accounts/2001")
        assert "closed" not in self.b.find_element(By.TAG_NAME, "h1").text
        self.logout()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--switchauth", default=os.path.join(ROOT, ".build/debug/switchauth"))
    # The committed screenshots (Tests/browser/screenshots/*.png) are copied from latest/ by hand.
    p.add_argument("--screenshots", default=os.path.join(HERE, "screenshots", "latest"))
    args = p.parse_args()
    if not os.access(args.switchauth, os.X_OK):
        missing(f"{args.switchauth} (swift build first)")
    if not shutil.which("chromium") or not shutil.which("chromedriver"):
        missing("chromium and chromium-driver (apt-get install chromium chromium-driver)")
    s = Suite(args)
    try:
        s.start()
        s.check("login", s.login)
        s.check("add_account", s.add_account)
        s.check("add_ip_setting", s.add_ip_setting)
        s.check("add_device_password_shown_once", s.add_device)
        s.check("audit_entry_seen", s.audit_entry)
        s.check("explain_a_call", s.explain)
        s.check("form_without_csrf_token_refused", s.csrf_refused)
        s.check("logout", s.logout)
        s.check("read_only_operator_refused_a_change", s.read_only_refused)
    except Exception:
        traceback.print_exc()
        s.failed += 1
    finally:
        s.stop()
    print(f"{s.passed} passed, {s.failed} failed")
    sys.exit(0 if s.failed == 0 and s.passed > 0 else 1)


if __name__ == "__main__":
    main()
