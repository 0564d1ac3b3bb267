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

function init(root) {
  preferences(root);
  copyButtons(root);
  startCountdowns(root);
}

document.addEventListener("DOMContentLoaded", () => init(document));
document.addEventListener("htmx:load", (event) => init(event.target));
