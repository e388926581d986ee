#!/usr/bin/env python3
"""scripts/console-firefox: the web console in a real headless Firefox (ESR), by hand.

Usage: scripts/console-firefox ADMIN_URL [TOKEN]

Debian has no geckodriver, so the console's CI test drives Chromium; this checks Firefox
through its own Marionette protocol: the page loads, a wrong token is refused, the right one
opens the overview, events, an event (its body shown as text, no injected script run),
destinations and routes. It needs a running relay with at least one stored event; it starts
Firefox on a temporary profile and a free loopback port and stops it by its PID. Exit 0 when
every check passed.
"""
import base64, json, os, shutil, socket, subprocess, sys, tempfile, time

def fail(message):
    print(f"console-firefox: FAIL: {message}")
    sys.exit(1)

admin = sys.argv[1].rstrip("/") if len(sys.argv) > 1 else fail("usage: scripts/console-firefox ADMIN_URL [TOKEN]")
token = sys.argv[2] if len(sys.argv) > 2 else ""
with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0)); port = probe.getsockname()[1]
profile = tempfile.mkdtemp(prefix="relay-firefox-")
with open(os.path.join(profile, "user.js"), "w") as f:
    f.write(f'user_pref("marionette.port", {port});\n')
env = dict(os.environ, HOME=profile, MOZ_HEADLESS="1")
firefox = subprocess.Popen(["firefox-esr", "--headless", "--marionette", "--no-remote", "--profile", profile, "--window-size=1280,900"],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
buffer = b""
def read(sock):
    global buffer
    while b":" not in buffer:
        chunk = sock.recv(65536)
        if not chunk: fail("Marionette closed the connection")
        buffer += chunk
    length, rest = buffer.split(b":", 1)
    while len(rest) < int(length): rest += sock.recv(65536)
    message, buffer = rest[:int(length)], rest[int(length):]
    return json.loads(message)
try:
    for _ in range(150):
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=30); break
        except OSError:
            time.sleep(0.2)
    else:
        fail("Firefox's Marionette did not answer")
    read(sock)
    counter = 0
    def command(name, params=None):
        global counter
        counter += 1
        data = json.dumps([0, counter, name, params or {}]).encode()
        sock.sendall(str(len(data)).encode() + b":" + data)
        reply = read(sock)
        if reply[2]: fail(f"{name}: {reply[2]}")
        return reply[3]
    def run(script):
        return command("WebDriver:ExecuteScript", {"script": script, "args": []})["value"]
    def text():
        return run("return document.getElementById('app').innerText")
    def wait_for(needle, what):
        deadline = time.time() + 15
        while time.time() < deadline:
            if needle in text(): return
            time.sleep(0.2)
        fail(f"{what}: '{needle}' did not appear; the page shows: {text()[:300]!r}")
    def go(route):
        command("WebDriver:Navigate", {"url": admin + "/ui/#/" + route})
    command("WebDriver:NewSession", {"capabilities": {}})
    go("overview")
    if token:
        wait_for("Admin token", "the token prompt")
        run("const i = document.querySelector('input[name=token]'); i.value = 'not-the-token'; i.form.requestSubmit(); return 1")
        wait_for("Wrong token", "a wrong token")
        if "evt_" in text(): fail("a wrong token showed events")
        run(f"const i = document.querySelector('input[name=token]'); i.value = {json.dumps(token)}; i.form.requestSubmit(); return 1")
    wait_for("Last hour:", "the overview")
    go("events")
    wait_for("evt_", "the events list")
    first = run("const a = document.querySelector('#events a[href^=\"#/event/\"]'); return a && a.getAttribute('href')")
    command("WebDriver:Navigate", {"url": admin + "/ui/" + first})
    wait_for("Deliveries and attempts", "an event")
    if run("return document.querySelectorAll('script').length") != 1 or run("return typeof window.__xss") != "undefined":
        fail("a script other than the console's ran")
    go("destinations")
    wait_for("5 min success", "the destinations")
    go("routes")
    wait_for("Backtest a routes file", "the routes page")
    print("console-firefox: every check passed (token prompt, overview, events, event, destinations, routes)")
finally:
    firefox.terminate()
    try:
        firefox.wait(timeout=20)
    except subprocess.TimeoutExpired:
        firefox.kill()
    shutil.rmtree(profile, ignore_errors=True)
