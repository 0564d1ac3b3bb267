// Sluice dashboard: the few things HTML and htmx cannot do alone. No inline script anywhere;
// this file is loaded as a module from a content-hashed URL under a strict CSP.

// Preference selects apply at once (the Apply button stays for browsers without scripts).
function preferences(root) {
  for (const form of root.querySelectorAll("form.prefs")) {
    const button = form.querySelector("[data-autosubmit-fallback]");
    if (button) button.hidden = true;
    for (const select of form.querySelectorAll("select")) {
      select.addEventListener("change", () => form.requestSubmit());
    }
  }
}

// Copy buttons: <button data-copy="#id"> copies that element's text.
function copyButtons(root) {
  for (const button of root.querySelectorAll("[data-copy]")) {
    if (button.dataset.bound) continue;
    button.dataset.bound = "1";
    button.addEventListener("click", async () => {
      const source = document.querySelector(button.dataset.copy);
      if (!source) return;
      const text = source.value ?? source.textContent;
      try {
        await navigator.clipboard.writeText(text);
      } catch {
        // Plain-HTTP LAN installs have no clipboard API: select the text for Ctrl+C.
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        document.execCommand("copy");
      }
      button.dataset.copied = "1";
      const label = button.textContent;
      button.textContent = button.dataset.copiedLabel || "Copied";
      setTimeout(() => { button.textContent = label; delete button.dataset.copied; }, 1500);
    });
  }
}

// Countdowns: <time class="countdown" data-remaining-ms="251000">. The deadline is taken from
// the browser's monotonic clock at load, so a skewed wall clock does not matter. At zero the
// element fires "expired" (bubbling), which rows use as an htmx trigger to refresh themselves.
const countdowns = new Set();
function format(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m ${r}s`;
  return `${r}s`;
}
function startCountdowns(root) {
  for (const el of root.querySelectorAll("time.countdown[data-remaining-ms]")) {
    if (el.dataset.deadline) continue;
    el.dataset.deadline = String(performance.now() + Number(el.dataset.remainingMs));
    countdowns.add(el);
  }
}
setInterval(() => {
  const now = performance.now();
  for (const el of countdowns) {
    if (!el.isConnected) { countdowns.delete(el); continue; }
    const left = Number(el.dataset.deadline) - now;
    el.textContent = format(left);
    if (left <= 0) {
      countdowns.delete(el);
      el.classList.add("ended");
      el.dispatchEvent(new CustomEvent("expired", { bubbles: true }));
    }
  }
}, 250);

// Live parts: <div data-live="/ui/live/…" data-live-event="…"> takes what its Server-Sent
// Events stream pushes (server-rendered HTML from the dashboard's own origin): the named event
// (default `overview`) replaces its content (the charts refresh with it), `swap` replaces one
// element by id; countdowns in it restart.
function live(root) {
  for (const el of root.querySelectorAll("[data-live]")) {
    if (el.dataset.bound) continue;
    el.dataset.bound = "1";
    const source = new EventSource(el.dataset.live);
    // A part the user is acting in (an open confirmation) is replaced once they are done.
    let held = null;
    const apply = (html) => {
      el.innerHTML = html;
      el.dataset.updated = String(Date.now());
      init(el);
      refreshCharts();
    };
    el.addEventListener("toggle", () => {
      if (held !== null && !el.querySelector("details[open]")) { apply(held); held = null; }
    }, true);
    source.addEventListener(el.dataset.liveEvent || "overview", (event) => {
      if (el.querySelector("details[open]")) { held = event.data; return; }
      apply(event.data);
    });
    // `swap`: an element (a credential's row, a table) that replaces the one with its id.
    source.addEventListener("swap", (event) => {
      const template = document.createElement("template");
      template.innerHTML = event.data.trim();
      const fresh = template.content.firstElementChild;
      const old = fresh && fresh.id ? document.getElementById(fresh.id) : null;
      // Not under the user's hands: an open confirmation stays; the row refreshes later.
      if (!old || old.querySelector("details[open]")) return;
      old.replaceWith(fresh);
      if (window.htmx) window.htmx.process(fresh);
      init(fresh);
      el.dataset.updated = String(Date.now());
    });
    source.addEventListener("signedout", () => {
      source.close();
      window.location.assign("/ui/login");
    });
    // A dropped stream reconnects by itself (EventSource retries); a closed page ends it.
    window.addEventListener("pagehide", () => source.close());
  }
}

// The request list's live tail: <div data-tail="/ui/live/requests?…" data-target="tbody"
// data-watch="table">. New rows (server-rendered, same origin) go on top of the list, unless
// the user is reading: the "live" box unticked, the pointer over the table, the page scrolled
// down, or text selected. Then they wait, counted on a button that shows them.
const TAIL_MAX_ROWS = 500;
function tail(root) {
  for (const el of root.querySelectorAll("[data-tail]")) {
    if (el.dataset.bound) continue;
    el.dataset.bound = "1";
    const target = document.querySelector(el.dataset.target);
    const watched = document.querySelector(el.dataset.watch);
    const toggle = el.querySelector("#tail-on");
    const state = el.querySelector("#tail-state");
    const show = el.querySelector("#tail-show");
    const count = el.querySelector("#tail-count");
    if (!target || !toggle || !state || !show || !count) continue;
    let hovering = false;
    let held = [];
    if (watched) {
      watched.addEventListener("pointerenter", () => { hovering = true; update(); });
      watched.addEventListener("pointerleave", () => { hovering = false; flush(); });
    }
    const reading = () =>
      !toggle.checked || hovering || window.scrollY > 80 ||
      (window.getSelection && String(window.getSelection()).length > 0);
    function update() {
      const paused = reading();
      el.dataset.paused = paused ? "1" : "";
      state.textContent = paused ? state.dataset.pausedText : state.dataset.liveText;
      count.textContent = String(held.reduce((n, rows) => n + rows.length, 0));
      show.hidden = held.length === 0;
    }
    function insert(rows) {
      const empty = target.querySelector("tr.empty");
      if (empty) empty.remove();
      for (const row of rows.reverse()) {
        const id = row.dataset.requestId;
        if (id && target.querySelector(`tr[data-request-id="${CSS.escape(id)}"]`)) continue;
        target.prepend(row);
        row.classList.add("fresh");
      }
      while (target.rows.length > TAIL_MAX_ROWS) target.deleteRow(-1);
    }
    function flush(force) {
      if (!force && reading()) { update(); return; }
      const batches = held;
      held = [];
      for (const rows of batches) insert(rows);
      update();
    }
    toggle.addEventListener("change", () => flush());
    window.addEventListener("scroll", () => { if (held.length) flush(); else update(); }, { passive: true });
    show.addEventListener("click", () => flush(true));
    const source = new EventSource(el.dataset.tail);
    source.addEventListener("rows", (event) => {
      const t = document.createElement("template");
      t.innerHTML = event.data;
      held.push([...t.content.querySelectorAll("tr")]);
      el.dataset.updated = String(Date.now());
      flush();
    });
    source.addEventListener("signedout", () => {
      source.close();
      window.location.assign("/ui/login");
    });
    window.addEventListener("pagehide", () => source.close());
    update();
  }
}

// Charts: <div data-chart="traffic|latency" data-src="…json" data-labels='{…}'> drawn with the
// vendored uPlot (loaded only on pages that have charts).
const charts = new Map();
const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
function stacked(rows) {
  // Cumulative sums, bottom to top, so filled lines draw a stacked area.
  const out = [];
  let acc = rows[0].map(() => 0);
  for (const row of rows) {
    acc = acc.map((v, i) => v + (row[i] || 0));
    out.push(acc);
  }
  return out;
}
function chartOptions(kind, labels, width) {
  const series = [{}];
  if (kind === "traffic") {
    const colours = [css("--ok"), css("--accent"), css("--warn"), css("--bad")];
    const names = [labels.ok, labels.saved, labels["4xx"], labels["5xx"]];
    // Drawn top-down so each lower band paints over the one above it.
    for (let i = 3; i >= 0; i--) {
      series.push({ label: names[i], stroke: colours[i], fill: colours[i] + "55", width: 1, points: { show: false } });
    }
    return { width, height: 220, series, axes: [{}, { label: labels.requests }], scales: { x: { time: true } } };
  }
  const colours = [css("--accent"), css("--accent"), css("--warn"), css("--warn")];
  const names = [labels.latency50, labels.latency95, labels.ttft50, labels.ttft95];
  names.forEach((name, i) => series.push({ label: name, stroke: colours[i], width: 2, dash: i % 2 ? [6, 4] : undefined, spanGaps: true, points: { show: false } }));
  return { width, height: 220, series, axes: [{}, { label: labels.ms }], scales: { x: { time: true } } };
}
function chartData(kind, s) {
  if (kind === "traffic") {
    const [ok, saved, c4, c5] = stacked([s.ok, s.saved, s.client_errors, s.server_errors]);
    return [s.x, c5, c4, saved, ok];
  }
  return [s.x, s.latency_p50, s.latency_p95, s.ttft_p50, s.ttft_p95];
}
async function drawChart(el) {
  if (typeof window.uPlot !== "function") return;
  const response = await fetch(el.dataset.src, { credentials: "same-origin", headers: { accept: "application/json" } });
  if (!response.ok) return;
  const s = await response.json();
  const kind = el.dataset.chart;
  const labels = JSON.parse(el.dataset.labels || "{}");
  const data = chartData(kind, s);
  const existing = charts.get(el);
  if (existing) {
    existing.setData(data);
  } else {
    el.textContent = "";
    const plot = new window.uPlot(chartOptions(kind, labels, Math.max(280, el.clientWidth - 24)), data, el);
    charts.set(el, plot);
  }
  el.dataset.points = String(s.x.length);
  el.dataset.requests = String([...s.ok, ...s.saved, ...s.client_errors, ...s.server_errors].reduce((a, b) => a + b, 0));
}
function refreshCharts() {
  for (const el of document.querySelectorAll("[data-chart]")) drawChart(el).catch(() => {});
}
function startCharts(root) {
  for (const el of root.querySelectorAll("[data-chart]")) {
    if (el.dataset.bound) continue;
    el.dataset.bound = "1";
    drawChart(el).catch(() => {});
  }
}
window.addEventListener("resize", () => {
  for (const [el, plot] of charts) plot.setSize({ width: Math.max(280, el.clientWidth - 24), height: 220 });
});

// The new-key dialog is modal and cannot be dismissed (Escape does nothing) until the user
// ticks "I have saved this key" and presses Done (a plain GET form: the browser's own
// `required` check holds it without scripts too).
function modals(root) {
  for (const dialog of root.querySelectorAll("dialog[data-modal]")) {
    if (dialog.dataset.bound) continue;
    dialog.dataset.bound = "1";
    dialog.addEventListener("cancel", (event) => event.preventDefault());
    if (dialog.open && typeof dialog.showModal === "function") {
      dialog.close();
      dialog.showModal();
    }
  }
}

function init(root) {
  preferences(root);
  modals(root);
  copyButtons(root);
  startCountdowns(root);
  live(root);
  tail(root);
  startCharts(root);
}

document.addEventListener("DOMContentLoaded", () => init(document));
document.addEventListener("htmx:load", (event) => init(event.target));
