// Ferrum dashboard: the only script. Live task logs over server-sent events (closed while the
// tab is hidden, reopened when it shows again) and the preview of the schedule forms' next fire
// times.
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

// A schedule form previews its next fire times as it is typed: its fields go to the
// form's data-preview URL, which checks them as saving would and answers {next} or {msg}.
function schedulePreview(form) {
  const out = form.querySelector(".preview");
  // Answers may arrive out of order as the user types: only the latest request's is shown.
  let latest = 0;
  const update = async () => {
    const mine = ++latest;
    const q = new URLSearchParams(new FormData(form));
    q.delete("csrf");
    const r = await fetch(form.dataset.preview + "?" + q);
    const body = await r.json();
    if (mine !== latest) return;
    if (!r.ok) out.textContent = body.msg;
    else out.textContent = body.next.length ? "Next: " + body.next.join(", ") : "Next: none";
  };
  form.addEventListener("input", update);
  form.addEventListener("change", update);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("pre[data-stream]").forEach(followLog);
  document.querySelectorAll("form[data-preview]").forEach(schedulePreview);
  const all = document.getElementById("select-all");
  if (all) all.addEventListener("change", () => {
    document.querySelectorAll("input[name=ids]").forEach((c) => { c.checked = all.checked; });
  });
});
