import Foundation
import HTTPTypes
import Hummingbird

/// The dashboard's stylesheet and script, compiled into the binary (no network, no build
/// step): light and dark themes from `prefers-color-scheme`, a layout that works from 390 px
/// wide up, and the little script behind live updates, confirmations and previews.
enum DashboardAssets {
    static func response(_ text: String, type: String) -> Response {
        Response(status: .ok, headers: [.contentType: type, .cacheControl: "public, max-age=300"],
                 body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static let css = #"""
    :root { color-scheme: light dark; --bg: #f7f7f8; --fg: #1b1d21; --muted: #5d6470; --card: #ffffff; --line: #d9dce1;
      --accent: #1d5fd1; --accent-fg: #ffffff; --ok: #17803d; --warn: #a35c00; --bad: #c0262d; --info: #1d5fd1; --chip: #eceef1; }
    @media (prefers-color-scheme: dark) {
      :root { --bg: #121417; --fg: #e6e8eb; --muted: #9aa3ae; --card: #1b1e23; --line: #2e333a; --accent: #6ea2ff;
        --accent-fg: #0b0d10; --ok: #4cc47a; --warn: #e0a040; --bad: #ff6b6b; --info: #6ea2ff; --chip: #262a31; } }
    * { box-sizing: border-box; }
    body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: var(--bg); color: var(--fg); }
    a { color: var(--accent); }
    code, pre, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 13px; }
    pre.reply { white-space: pre-wrap; overflow-wrap: anywhere; }
    p .mono { overflow-wrap: anywhere; }
    header.top { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 18px; padding: 10px 20px; background: var(--card);
      border-bottom: 1px solid var(--line); }
    .brand { font-weight: 700; font-size: 18px; text-decoration: none; color: var(--fg); }
    header nav { display: flex; flex-wrap: wrap; gap: 4px 14px; flex: 1; }
    header nav a { text-decoration: none; padding: 4px 2px; }
    header nav a:hover, header nav a:focus { text-decoration: underline; }
    .who { display: flex; align-items: center; gap: 8px; color: var(--muted); }
    main { padding: 16px 20px 40px; max-width: 1400px; margin: 0 auto; }
    .title-row { display: flex; flex-wrap: wrap; align-items: center; justify-content: space-between; gap: 8px; }
    h1 { font-size: 22px; margin: 6px 0 12px; } h2 { font-size: 17px; margin: 22px 0 8px; }
    .live-bar { display: flex; flex-wrap: wrap; gap: 10px; align-items: center; color: var(--muted); font-size: 13px; }
    .live-bar label { flex-direction: row; align-items: center; gap: 6px; }
    .card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; margin: 10px 0; }
    .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 12px; }
    .scroll { overflow-x: auto; }
    table { border-collapse: collapse; width: 100%; background: var(--card); }
    th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
    th { font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
    td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
    .badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; background: var(--chip); }
    .s-completed, .s-fresh { color: var(--ok); } .s-dead, .s-open, .s-failed { color: var(--bad); } .s-retrying, .s-half_open, .s-paused, .s-stale { color: var(--warn); }
    .s-running, .s-queued { color: var(--info); } .s-cancelled, .s-scheduled { color: var(--muted); }
    form.inline { display: inline; } form.filters { display: flex; flex-wrap: wrap; gap: 8px 14px; align-items: end; margin: 8px 0 14px; }
    form.stack { display: grid; gap: 10px; max-width: 640px; }
    label { display: inline-flex; flex-direction: column; gap: 2px; font-size: 13px; color: var(--muted); }
    form.stack label { display: flex; }
    input, select, textarea, button { font: inherit; color: var(--fg); background: var(--card); border: 1px solid var(--line);
      border-radius: 6px; padding: 5px 8px; }
    textarea { min-height: 120px; font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 13px; }
    input[type=checkbox] { width: 18px; height: 18px; }
    label.check { flex-direction: row; align-items: center; gap: 6px; }
    button { background: var(--accent); color: var(--accent-fg); border-color: var(--accent); cursor: pointer; }
    button.secondary { background: var(--card); color: var(--accent); }
    button.danger { background: var(--bad); border-color: var(--bad); color: #fff; }
    button.link { background: none; border: none; color: var(--accent); padding: 0; text-decoration: underline; }
    button:focus-visible, a:focus-visible, input:focus-visible, select:focus-visible, summary:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
    .notice { padding: 8px 12px; border-radius: 6px; border: 1px solid var(--line); background: var(--card); margin: 8px 0; }
    .notice.error { border-color: var(--bad); }
    .hint, .empty { color: var(--muted); font-size: 13px; }
    pre.json { background: var(--chip); padding: 10px; border-radius: 6px; overflow-x: auto; max-height: 480px; }
    .kv { display: grid; grid-template-columns: max-content 1fr; gap: 4px 14px; margin: 0; } .kv dt { color: var(--muted); } .kv dd { margin: 0; overflow-wrap: anywhere; }
    code { overflow-wrap: anywhere; }
    progress { width: 160px; height: 12px; } .pager { margin: 12px 0; }
    .chart { width: 100%; height: auto; max-width: 640px; } .chart text { fill: var(--muted); font-size: 10px; }
    .chart .axis { stroke: var(--line); } .chart .series { fill: none; stroke-width: 1.6; }
    .c0 { stroke: var(--info); } .c1 { stroke: var(--bad); } .c2 { stroke: var(--ok); } .c3 { stroke: var(--warn); }
    .legend span { margin-right: 12px; font-size: 12px; } .legend .c0 { color: var(--info); } .legend .c1 { color: var(--bad); }
    .legend .c2 { color: var(--ok); } .legend .c3 { color: var(--warn); }
    .actions { display: flex; flex-wrap: wrap; gap: 8px; margin: 10px 0; }
    .sign-in { max-width: 460px; display: grid; gap: 8px; }
    @media (max-width: 600px) { main { padding: 10px; } header.top { padding: 8px 10px; }
      header nav { order: 3; flex-basis: 100%; } th, td { padding: 5px 6px; }
      .hide-narrow { display: none; } progress { width: 90px; } }
    """#

    static let js = #"""
    (() => {
      'use strict';
      const body = document.body;
      // Times in the reader's own zone (the server writes UTC).
      function localTimes(root) {
        root.querySelectorAll('time[datetime]').forEach((t) => {
          const d = new Date(t.getAttribute('datetime'));
          if (!isNaN(d)) { t.title = t.getAttribute('datetime'); t.textContent = d.toLocaleString(); }
        });
      }
      localTimes(document);
      // Forms that ask first.
      document.addEventListener('submit', (e) => {
        const message = e.target.getAttribute && e.target.getAttribute('data-confirm');
        if (message && !window.confirm(message)) e.preventDefault();
      });
      // "Select all" boxes.
      document.addEventListener('change', (e) => {
        const t = e.target;
        if (t.matches && t.matches('[data-select-all]')) {
          document.querySelectorAll('input[type=checkbox][name="' + t.dataset.selectAll + '"]').forEach((c) => { c.checked = t.checked; });
        }
      });
      // A cron expression's next runs, asked of the server as it is typed.
      const cron = document.querySelector('[data-cron-preview]');
      if (cron) {
        const form = cron.form, out = document.getElementById('cron-preview');
        let timer = null, asked = 0;
        const update = async () => {
          const mine = ++asked;
          const q = new URLSearchParams({ cron: form.elements.cron.value, time_zone: form.elements.time_zone.value });
          const r = await fetch('/ui/schedules/preview?' + q, { headers: { Accept: 'text/html' }, credentials: 'same-origin' });
          // Only the answer to the latest question, and only a preview (not a sign-in page).
          if (mine !== asked || !r.ok || r.redirected) return;
          out.innerHTML = await r.text();
          localTimes(out);
        };
        form.addEventListener('input', (e) => {
          if (e.target.name === 'cron' || e.target.name === 'time_zone') { clearTimeout(timer); timer = setTimeout(update, 250); }
        });
      }
      // Live updates: job events (Server-Sent Events; or the page's own feed's changes) mark the page stale; every few seconds
      // a stale page fetches itself and swaps in its live regions. Paused by the toggle and
      // while the tab is hidden; a new stream resumes after the last event seen.
      if (body.dataset.live === undefined) return;
      const toggle = document.getElementById('live-toggle');
      const every = document.getElementById('live-interval');
      const state = document.getElementById('live-state');
      let source = null, timer = null, stale = false, fetching = false, retry = 1000;
      let lastId = body.dataset.liveFrom && body.dataset.liveFrom !== '-1' ? body.dataset.liveFrom : null;
      try {
        const saved = JSON.parse(localStorage.getItem('esteira-live') || '{}');
        if (saved.on === false) toggle.checked = false;
        if (saved.every) every.value = saved.every;
      } catch (_) { /* no saved choice */ }
      const save = () => { try { localStorage.setItem('esteira-live', JSON.stringify({ on: toggle.checked, every: every.value })); } catch (_) {} };
      const show = (s) => { state.textContent = s; body.dataset.liveState = s; };
      function open() {
        if (source || !toggle.checked || document.hidden) return;
        const q = new URLSearchParams(body.dataset.live);
        if (lastId) q.set('last_event_id', lastId);
        const s = new EventSource((body.dataset.liveSource || '/ui/events') + '?' + q);
        source = s;
        const seen = (e) => { lastId = e.lastEventId || lastId; stale = true; };
        s.addEventListener('job', seen);
        s.addEventListener('change', seen);
        s.onopen = () => { retry = 1000; show('live'); };
        s.onerror = () => {
          if (s.readyState !== EventSource.CLOSED) { show('reconnecting…'); return; }
          // The browser gave up (the api refused the stream or went away): try again later,
          // each time waiting longer, up to a minute.
          if (source === s) source = null;
          show('disconnected; retrying');
          setTimeout(open, retry);
          retry = Math.min(retry * 2, 60000);
        };
      }
      function close() { if (source) { source.close(); source = null; } }
      async function refresh() {
        if (!stale || fetching || !toggle.checked || document.hidden) return;
        stale = false;
        fetching = true;
        let r;
        try { r = await fetch(location.href, { headers: { Accept: 'text/html' }, credentials: 'same-origin' }); } catch (_) { stale = true; fetching = false; return; }
        fetching = false;
        if (!r.ok || r.redirected) return;
        const doc = new DOMParser().parseFromString(await r.text(), 'text/html');
        document.querySelectorAll('[data-region]').forEach((el) => {
          // Leave a region alone while someone is choosing in it.
          if (el.querySelector('input[type=checkbox]:checked') || (el.contains(document.activeElement) && document.activeElement.matches('input, select, textarea'))) return;
          const fresh = doc.getElementById(el.id);
          if (fresh) { el.innerHTML = fresh.innerHTML; localTimes(el); }
        });
        body.dataset.refreshed = String(Date.now());
      }
      // A region still waiting for figures the server is gathering asks again at each tick.
      const tick = () => { if (document.querySelector('[data-pending]')) stale = true; refresh(); };
      function schedule() { clearInterval(timer); timer = setInterval(tick, Number(every.value) * 1000); }
      toggle.addEventListener('change', () => { save(); if (toggle.checked) { open(); stale = true; refresh(); } else { close(); show('paused'); } });
      every.addEventListener('change', () => { save(); schedule(); });
      document.addEventListener('visibilitychange', () => {
        if (document.hidden) { close(); show('paused while hidden'); } else if (toggle.checked) { open(); refresh(); }
      });
      if (toggle.checked) open(); else show('paused');
      schedule();
    })();
    """#
}
