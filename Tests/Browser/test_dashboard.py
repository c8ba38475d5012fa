"""The web dashboard in Chromium: sign-in, live updates, dead letters, schedules, lead
migrations, exports, messaging campaigns and conversations, email stores and conversations, ownership and CSRF, each page checked for script errors and labels and
screenshotted at 1280 px and 390 px wide."""
import imaplib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from playwright.sync_api import expect

from conftest import BASE, psql


def test_every_page_renders_for_an_admin(sessions, api):
    api.enqueue({"steps": 4, "sleep_ms": 200})
    s = sessions()
    for path in ["/ui/", "/ui/queues", "/ui/jobs", "/ui/dead-letters", "/ui/schedules", "/ui/schedules/new",
                 "/ui/lead-migrations", "/ui/exports", "/ui/store-syncs", "/ui/messaging", "/ui/email", "/ui/tokens"]:
        page = s.open(path)
        expect(page.locator("h1")).to_be_visible()
        expect(page.locator("header nav")).to_contain_text("Tokens")
    # The overview's charts are drawn by the server, as SVG.
    s.open("/ui/")
    expect(s.page.locator("svg.chart").first).to_be_visible()
    # The queues page reads the broker's management API: it knows the consumers.
    s.open("/ui/queues")
    expect(s.page.locator("#queues")).to_contain_text("management API")


def test_the_dark_theme_follows_the_system(sessions):
    light, dark = sessions(name="light"), sessions(name="dark", color_scheme="dark")
    colours = []
    for s in (light, dark):
        page = s.open("/ui/jobs")
        colours.append(page.evaluate("() => getComputedStyle(document.body).backgroundColor"))
    assert colours[0] != colours[1], colours
    # Dark: a dark background (each channel under 64), light: a light one.
    channels = [[int(c) for c in re.findall(r"\d+", colour)[:3]] for colour in colours]
    assert min(channels[0]) > 200 and max(channels[1]) < 64, channels


def test_a_job_completes_on_its_page_without_a_reload(sessions, api):
    s = sessions()
    job_id = api.enqueue({"steps": 5, "sleep_ms": 2500})
    page = s.open(f"/ui/jobs/{job_id}")
    page.evaluate("() => { window.__noReload = true; }")
    expect(page.locator("#job-status")).to_contain_text("completed", timeout=30_000)
    assert page.evaluate("() => window.__noReload === true"), "the page was reloaded"
    expect(page.locator("#events")).to_contain_text("completed")
    s.check("job completed")


def test_the_filter_forms_filter(sessions, api):
    marker = uuid.uuid4().hex
    wanted = api.enqueue({"customer": {"ref": marker}})
    other = api.enqueue({"customer": {"ref": "someone else"}})
    s = sessions()
    page = s.open("/ui/jobs")
    # Every field is sent, the empty ones too: "any kind", "any status", no dates.
    page.get_by_label("Payload").fill(f"payload.customer.ref={marker}")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#jobs-table")).to_contain_text(wanted[-8:])
    expect(page.locator("#jobs-table")).not_to_contain_text(other[-8:])
    page.get_by_label("Kind").select_option("noop")
    page.get_by_label("Created from (UTC)").fill("2020-01-01T00:00")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#jobs-table")).to_contain_text(wanted[-8:])
    # A bad filter says which field, on a page.
    page.get_by_label("Payload").fill("customer=1")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator(".notice.error")).to_contain_text("payload.key=value")
    expect(page.locator(".notice.error code")).to_have_text("q")
    s.check("a bad filter")
    page = s.open("/ui/dead-letters")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("h1")).to_have_text("Dead letters")


def test_the_job_list_updates_live_and_the_toggle_pauses_it(sessions, api):
    s = sessions()
    page = s.open("/ui/jobs?kind=noop")
    page.evaluate("() => { window.__noReload = true; }")
    first = api.enqueue({})
    expect(page.locator("#jobs-table")).to_contain_text(first[-8:], timeout=20_000)
    # Paused: a new job does not appear, however long we wait.
    page.get_by_role("checkbox", name="Live updates").uncheck()
    expect(page.locator("#live-state")).to_have_text("paused")
    second = api.enqueue({})
    api.wait_for(second, "completed")
    time.sleep(4)
    expect(page.locator("#jobs-table")).not_to_contain_text(second[-8:])
    # Resumed: it shows.
    page.get_by_role("checkbox", name="Live updates").check()
    expect(page.locator("#jobs-table")).to_contain_text(second[-8:], timeout=20_000)
    # The interval is a control too, kept across pages.
    page.get_by_label("Refresh interval").select_option("5")
    page.reload()
    expect(page.get_by_label("Refresh interval")).to_have_value("5")
    assert page.evaluate("() => window.__noReload === undefined")
    s.check("jobs live")


def test_a_dead_letter_is_requeued_from_the_page(sessions, api):
    s = sessions()
    dead = api.enqueue({"fail": "permanent", "marker": uuid.uuid4().hex})
    api.wait_for(dead, "dead")
    page = open_when_listed(s, "/ui/dead-letters?kind=noop", [dead])
    page.get_by_label(f"Select job {dead}").check()
    page.get_by_role("button", name="Requeue selected").click()
    expect(page.locator("#notice")).to_contain_text("Requeued 1 of 1 selected")
    # It ran again (and died again: it always fails), the requeue on its history.
    deadline = time.time() + 30
    while sum(e["status"] == "dead" for e in api.job(dead)["events"]) < 2 and time.time() < deadline:
        time.sleep(0.2)
    events = api.job(dead)["events"]
    assert sum(e["status"] == "dead" for e in events) == 2, events
    assert any((e.get("detail") or {}).get("requeue_id") for e in events), events
    expect(page.locator("#audit-table")).to_contain_text("job_ids")
    s.check("dead letters after requeue")

    # By filter: a count first, nothing moves until it is confirmed.
    more = [api.enqueue({"fail": "permanent"}) for _ in range(3)]
    for j in more:
        api.wait_for(j, "dead")
    page = open_when_listed(s, "/ui/dead-letters?kind=noop&error_class=permanent", more)
    page.get_by_role("button", name="Count and confirm…").click()
    expect(page.locator("#dry-run-count")).to_have_text(re.compile(r"^\d+$"))
    count = int(page.locator("#dry-run-count").inner_text())
    assert count >= 3
    assert all(api.job(j)["status"] == "dead" for j in more), "a dry run moved nothing"
    s.check("requeue dry run")
    page.get_by_role("button", name="Requeue them").click()
    expect(page.locator("#notice")).to_contain_text(f"Requeued {count} dead letters")


def open_when_listed(s, path, job_ids, timeout=30):
    """Opens `path` until it lists every job of `job_ids` (dead letters are archived from the
    dead-letter queue a moment after their job is dead)."""
    deadline = time.time() + timeout
    while True:
        page = s.open(path)
        text = page.locator("main").inner_text()
        if all(j[-8:] in text for j in job_ids):
            return page
        assert time.time() < deadline, f"{path} does not list {job_ids}"
        time.sleep(0.5)


def test_a_schedule_is_created_with_a_preview_of_its_next_runs(sessions):
    s = sessions()
    page = s.open("/ui/schedules/new")
    name = "nightly-" + uuid.uuid4().hex[:6]
    page.get_by_label("Name").fill(name)
    page.get_by_label("Time zone (IANA)").fill("America/New_York")
    page.get_by_label("Cron expression (minute hour day month weekday)").fill("30 2 * * *")
    expect(page.locator("#cron-preview li")).to_have_count(5)
    first = page.locator("#cron-preview li").first.inner_text()
    assert re.search(r"02:30:00-0[45]:?00 America/New_York", first), first
    s.check("schedule preview")
    # A bad expression says why, before anything is saved.
    page.get_by_label("Cron expression (minute hour day month weekday)").fill("61 * * * *")
    expect(page.locator("#cron-error")).to_be_visible()
    page.get_by_label("Cron expression (minute hour day month weekday)").fill("30 2 * * *")
    expect(page.locator("#cron-preview li")).to_have_count(5)
    page.get_by_role("button", name="Create schedule").click()
    expect(page.locator("#notice")).to_contain_text(f"Created {name}")
    row = page.locator("#schedules-table tr", has_text=name)
    expect(row).to_contain_text("enabled")
    row.get_by_role("button", name="Disable").click()
    expect(page.locator("#schedules-table tr", has_text=name)).to_contain_text("disabled")
    s.check("schedules")


def test_a_lead_migration_is_cancelled_from_the_page(sessions, api):
    # Planning paused, so the migration waits where the page can cancel it.
    status, _ = api.call("POST", "/v1/kinds/lead-migration.plan/pause", {"reason": "browser test"})
    assert status == 200
    try:
        funnel = psql("INSERT INTO funnels (name) VALUES ('browser') RETURNING id")
        column = psql(f"INSERT INTO funnel_columns (funnel_id, name) VALUES ({funnel}, 'won') RETURNING id")
        psql("INSERT INTO leads (run_id, name) SELECT 4242, 'lead ' || i FROM generate_series(1, 50) i")
        status, migration = api.call("POST", "/v1/lead-migrations", {"run_id": 4242, "funnel_id": int(funnel), "column_id": int(column)})
        assert status == 202, migration
        s = sessions()
        page = s.open("/ui/lead-migrations")
        row = page.locator("#migrations-table tr", has_text=migration["id"].lower()[-8:])
        expect(row).to_contain_text("pending")
        expect(row.locator("progress")).to_be_visible()
        row.get_by_role("button", name="Cancel").click()
        expect(page.locator("#notice")).to_contain_text("Cancelled")
        expect(page.locator("#migrations-table tr", has_text=migration["id"].lower()[-8:])).to_contain_text("cancelled")
        status, after = api.call("GET", "/v1/lead-migrations/" + migration["id"])
        assert after["state"] == "cancelled", after
        s.check("lead migration cancelled")
    finally:
        api.call("POST", "/v1/kinds/lead-migration.plan/resume")


class Fichas(BaseHTTPRequestHandler):
    """A PostgREST table stand-in for the export page: takes upserts into `fichas`, keeps the ids."""
    key = "browser-key"
    ids = {}

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.split("?")[0] != "/rest/v1/fichas" or self.headers.get("apikey") != self.key \
                or self.headers.get("Authorization") != "Bearer " + self.key:
            self.send_response(401)
            self.end_headers()
            return
        for row in json.loads(body):
            Fichas.ids[row["id"]] = Fichas.ids.get(row["id"], 0) + 1
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_an_export_runs_live_on_its_page_and_is_paused_and_resumed(sessions, api):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Fichas)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    name = "browser-" + uuid.uuid4().hex[:6]
    try:
        # Four requests a second of ten leads: 160 leads take about four seconds.
        status, target = api.call("POST", "/v1/export-targets", {"name": name, "base_url": f"http://127.0.0.1:{server.server_port}",
                                                                  "api_key": Fichas.key, "rate_limit": 4, "rate_burst": 1})
        assert status == 201, target
        ids = psql("INSERT INTO leads (run_id, name, created_at) SELECT 77, 'lead ' || i, "
                   "timestamptz '2025-01-10 08:00:00+00' + i * interval '1 minute' FROM generate_series(1, 160) i RETURNING id").split()
        s = sessions()
        page = s.open("/ui/exports")
        page.get_by_label("Newest day").fill("2025-01-10")
        page.get_by_label("Oldest day (empty: all history)").fill("2025-01-10")
        page.get_by_label("Batch size").fill("10")
        page.get_by_label("Target").select_option(name)
        page.get_by_role("button", name="Start export").click()
        expect(page.locator("#notice")).to_contain_text("started")
        card = page.locator(".export-card", has_text=name)
        expect(card).to_be_visible()
        # The card moves on by itself (live), day and counts.
        expect(card.locator(".processing-date")).to_have_text("2025-01-10")
        expect(card.locator(".exported")).not_to_have_text("0", timeout=15_000)
        card.get_by_label("Reason").fill("browser pause")
        card.get_by_role("button", name="Pause").click()
        expect(page.locator("#notice")).to_contain_text("Paused")
        card = page.locator(".export-card", has_text=name)
        expect(card).to_contain_text("Paused: browser pause")
        s.check("export paused")
        card.get_by_role("button", name="Resume").click()
        expect(page.locator("#notice")).to_contain_text("Resumed")
        # Done: it leaves the running cards for the history, coloured as completed.
        row = page.locator("#exports-table tr", has_text=name)
        expect(row.locator(".badge")).to_have_text("completed", timeout=30_000)
        expect(page.locator(".export-card", has_text=name)).to_have_count(0)
        assert sorted(Fichas.ids) == sorted(int(i) for i in ids) and set(Fichas.ids.values()) == {1}, Fichas.ids
        s.check("export completed")
    finally:
        server.shutdown()
        api.call("PATCH", f"/v1/export-targets/{name}", {"active": False})


class Provider(BaseHTTPRequestHandler):
    """A messaging provider stand-in: sends with a token and an idempotency key, 50 ms each."""
    token = "browser-provider"
    keys = {}

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        key = self.headers.get("Idempotency-Key")
        if self.path != "/messages" or self.headers.get("Authorization") != "Bearer " + self.token or not key:
            self.send_response(401)
            self.end_headers()
            return
        time.sleep(0.05)
        Provider.keys.setdefault(key, (f"p-{len(Provider.keys) + 1}", body["to"]))
        answer = json.dumps({"id": Provider.keys[key][0]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


def test_a_campaign_runs_live_on_its_page_and_a_conversation_updates_live(sessions, api):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Provider)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        user_api, owner = api.new_user("messaging")
        # Ten sends a second: 40 contacts take about four seconds.
        status, created = user_api.call("POST", "/v1/instances", {"nome": "Loja centro", "base_url": f"http://127.0.0.1:{server.server_port}",
                                                                   "token": Provider.token, "rate_limit": 10, "burst": 1})
        assert status == 201, created
        status, made = user_api.call("POST", "/v1/contacts/bulk", {"contatos": [
            {"nome": f"Cliente {i}", "telefone": f"+5511980000{i:03d}"} for i in range(40)]})
        assert status == 201 and made["created"] == 40, made
        s = sessions(user_api.token)
        page = s.open("/ui/messaging")
        page.get_by_label("Name").fill("Natal")
        page.get_by_label("Message").fill("Boas festas!")
        page.get_by_role("button", name="Start campaign").click()
        expect(page.locator("#notice")).to_contain_text("40 contacts")
        row = page.locator("#campaigns-table tr", has_text="Natal")
        # The row moves on by itself (live): some sent, then all, completed.
        expect(row.locator(".sent")).not_to_have_text("0", timeout=15_000)
        s.check("campaign sending")
        expect(row.locator(".badge")).to_have_text("concluida", timeout=30_000)
        expect(row.locator(".sent")).to_have_text("40")
        expect(row.locator(".percent")).to_have_text("100.0%")
        assert len(Provider.keys) == 40
        s.check("campaign completed")
        # A conversation: a message arriving (written elsewhere) shows without a reload.
        page.get_by_role("link", name="Cliente 7", exact=True).click()
        expect(page.locator("#messages-table")).to_contain_text("Boas festas!")
        contact = page.url.rsplit("/", 1)[1]
        psql(f"INSERT INTO mensagens (id, owner_id, contato_id, direcao, conteudo, status) "
             f"VALUES (gen_random_uuid(), '{owner}', '{contact}', 'entrada', 'Obrigado, igualmente!', 'recebida')")
        expect(page.locator("#messages-table")).to_contain_text("Obrigado, igualmente!", timeout=15_000)
        page.get_by_label("Message").fill("De nada!")
        page.get_by_role("button", name="Send").click()
        expect(page.locator("#notice")).to_contain_text("queued")
        expect(page.locator("#messages-table tr", has_text="De nada!").locator(".badge")).to_have_text("enviada", timeout=15_000)
        s.check("conversation")
        # Another user's contact is not found.
        other, _ = api.new_user("other")
        o = sessions(other.token)
        assert o.page.goto(f"{BASE}/ui/messaging/contacts/{contact}").status == 404
    finally:
        server.shutdown()


def test_a_user_sees_only_their_own_jobs(sessions, api):
    user_api, _ = api.new_user()
    admins = api.enqueue({"secret": "admin-only"})
    own = user_api.enqueue({"mine": True})
    user_api.wait_for(own, "completed")
    s = sessions(user_api.token)
    page = s.open("/ui/jobs")
    expect(page.locator("#jobs-table")).to_contain_text(own[-8:])
    expect(page.locator("#jobs-table")).not_to_contain_text(admins[-8:])
    # Another's job is not found, by id either.
    response = page.goto(f"{BASE}/ui/jobs/{admins}")
    assert response.status == 404
    expect(page.locator("main")).not_to_contain_text("admin-only")
    s.check("another user's job")
    # Admin pages and their links are not there for a user.
    expect(page.locator("header nav")).not_to_contain_text("Tokens")
    expect(page.locator("header nav")).not_to_contain_text("Queues")
    assert page.goto(f"{BASE}/ui/tokens").status == 403
    # Their own job's page works, with its buttons.
    s.open(f"/ui/jobs/{own}")
    expect(s.page.locator("#job-status")).to_contain_text("completed")


def test_a_post_without_the_csrf_token_is_refused(sessions, api):
    s = sessions()
    job_id = api.enqueue({"sleep_ms": 60_000})
    page = s.open(f"/ui/jobs/{job_id}")
    # The page's own form carries the token; a request without it (same cookies) is refused.
    for form in [{}, {"csrf": "0" * 64}]:
        r = s.context.request.post(f"{BASE}/ui/jobs/{job_id}/cancel", form=form, headers={"Accept": "text/html"},
                                   max_redirects=0)
        assert r.status == 403, r.status
        assert "CSRF" in r.text()
    assert api.job(job_id)["status"] in ("queued", "running")
    page.get_by_role("button", name="Cancel job").click()
    expect(page.locator("#notice")).to_contain_text("Cancelled")
    assert api.job(job_id)["status"] == "cancelled"


def test_sign_in_out_and_the_session_cookie(browser, sessions, api):
    s = sessions(None, name="sign-in")
    page = s.open("/ui/sign-in")
    # Keyboard only: the token field has focus, Enter signs in.
    page.keyboard.type("est_not_a_real_token_at_all")
    page.keyboard.press("Enter")
    expect(page.locator("#sign-in-error")).to_be_visible()
    s.check("sign-in refused")
    page.get_by_label("API token").fill(api.token)
    page.get_by_label("API token").press("Enter")
    page.wait_for_url(re.compile(r".*/ui/$"))
    cookie = next(c for c in s.context.cookies() if c["name"] == "esteira_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict", cookie
    assert api.token not in str(s.context.cookies()) and page.evaluate("() => document.cookie") == ""
    # Tab reaches the navigation's links and buttons.
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.tagName") in ("A", "BUTTON")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r".*/ui/sign-in\?signed_out=1"))
    page.goto(BASE + "/ui/jobs")
    assert "/ui/sign-in" in page.url


def test_a_store_mail_is_answered_live_on_the_email_page_with_its_conversation(sessions, api):
    sink_dir = tempfile.mkdtemp(prefix="esteira-browser-smtp-")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        smtp_port = s.getsockname()[1]
    sink = subprocess.Popen([os.environ["ESTEIRA_TEST_SMTP_PYTHON"], os.environ["ESTEIRA_TEST_SMTP_SINK"],
                             "--port", str(smtp_port), "--dir", sink_dir], stdout=subprocess.PIPE)
    try:
        assert sink.stdout.readline().strip() == b"listening"
        user_api, _ = api.new_user("email")
        mailbox = "b" + uuid.uuid4().hex[:16]
        imap_port, password = int(os.environ["ESTEIRA_TEST_IMAP_PORT"]), os.environ["ESTEIRA_TEST_IMAP_PASSWORD"]
        status, store = user_api.call("POST", "/v1/email-stores", {
            "name": "Loja Aurora", "imap_host": "127.0.0.1", "imap_port": imap_port, "imap_security": "none",
            "imap_user": mailbox, "imap_password": password, "smtp_host": "127.0.0.1", "smtp_port": smtp_port,
            "smtp_security": "none", "from_address": "suporte@aurora.example", "credits": 3})
        assert status == 201, store
        s = sessions(user_api.token)
        page = s.open("/ui/email")
        card = page.locator(".email-store", has_text="Loja Aurora")
        expect(card.locator(".credits")).to_have_text("3")
        # Mail arrives in the store's mailbox; the page follows it without a reload.
        root = f"<{uuid.uuid4().hex}@cliente.example>"
        raw = ("From: Ana Lima <ana@cliente.example>\r\nTo: suporte@aurora.example\r\nSubject: Quero trocar o tamanho\r\n"
               f"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\nMessage-ID: {root}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
               "Olá, o tamanho veio errado, quero trocar.\r\n").encode()
        imap = imaplib.IMAP4("127.0.0.1", imap_port)
        imap.login(mailbox, password)
        imap.append("INBOX", None, None, raw)
        imap.logout()
        row = page.locator("#email-messages-table tr", has_text="Quero trocar o tamanho")
        expect(row.locator(".badge")).to_have_text("replied", timeout=30_000)
        expect(card.locator(".credits")).to_have_text("2")
        s.check("email store")
        row.get_by_role("link", name="Quero trocar o tamanho").click()
        message = page.locator(".conversation-message", has_text="Quero trocar o tamanho")
        expect(message).to_contain_text("exchange")
        expect(message.locator("pre.reply")).to_contain_text("Recebemos seu pedido de troca")
        s.check("email conversation")
        assert os.path.exists(os.path.join(sink_dir, "1.eml")), "the reply reached the SMTP server"
        # Another user's store is not found.
        other, _ = api.new_user("other")
        o = sessions(other.token)
        assert o.page.goto(f"{BASE}{page.url.split(BASE, 1)[1]}").status == 404
    finally:
        sink.kill()
        sink.wait()
        shutil.rmtree(sink_dir, ignore_errors=True)
