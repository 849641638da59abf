// Ferrum dashboard: the only script. Live task logs over server-sent events (closed while the
// tab is hidden, reopened when it shows again) and the cron preview of the schedule form.
"use strict";

function followLog(el) {
  let source = null;
  const open = () => {
    if (source || document.hidden) return;
    source = new EventSource(el.dataset.stream);
    source.addEventListener("log", (e) => { el.textContent = JSON.parse(e.data); });
    source.addEventListener("status", (e) => {
      const s = document.getElementById("task-status");
      if (s) { s.textContent = e.data; s.className = "status-" + e.data; }
    });
    source.addEventListener("end", () => { source.close(); source = "done"; });
  };
  document.addEventListener("visibilitychange", () => {
    if (document.hidden && source && source !== "done") { source.close(); source = null; }
    else open();
  });
  open();
}

function cronPreview(form) {
  const out = document.getElementById("cron-preview");
  // Answers may arrive out of order as the user types: only the latest request's is shown.
  let latest = 0;
  const update = async () => {
    const mine = ++latest;
    const cron = form.elements.cron.value.trim();
    const tz = form.elements.timezone.value.trim();
    if (!cron) { out.textContent = ""; return; }
    const q = new URLSearchParams({ cron, timezone: tz });
    const r = await fetch("/cron-preview?" + q);
    const body = await r.json();
    if (mine !== latest) return;
    out.textContent = r.ok ? "Next: " + body.next.join(", ") : body.msg;
  };
  form.elements.cron.addEventListener("input", update);
  form.elements.timezone.addEventListener("input", update);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("pre[data-stream]").forEach(followLog);
  const f = document.getElementById("schedule-form");
  if (f) cronPreview(f);
  const all = document.getElementById("select-all");
  if (all) all.addEventListener("change", () => {
    document.querySelectorAll("input[name=ids]").forEach((c) => { c.checked = all.checked; });
  });
});
