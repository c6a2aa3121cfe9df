// herald web admin: live preview, test sends, conditional form sections and
// the event log's live updates. Plain browser JavaScript, no build step.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

// Show only the fields of the chosen kind (all show without JavaScript).
function toggleSections(form) {
  const pick = (sel, attr, value) => form.querySelectorAll(sel).forEach((el) => {
    const on = el.getAttribute(attr).split(" ").includes(value);
    el.hidden = !on;
  });
  const val = (name) => form.elements[name]?.value || "";
  pick("[data-auth]", "data-auth", val("auth_kind"));
  pick("[data-signing]", "data-signing", val("signing_kind"));
  pick("[data-retry]", "data-retry", val("retry_kind"));
  form.querySelectorAll("[data-batch]").forEach((el) => { el.hidden = !form.elements.batch_on.checked; });
}

function describeError(e) {
  let where = e.field;
  if (e.line) where += ` line ${e.line}` + (e.column ? `, column ${e.column}` : "");
  return `${where}: ${e.message}`;
}

async function updatePreview(form) {
  const out = document.getElementById("preview");
  const err = document.getElementById("preview-error");
  const warn = document.getElementById("preview-warning");
  // A new form before anything is typed has nothing wrong yet: no red error
  // until there is a URL to preview.
  if (!(form.elements.url?.value || "").trim()) {
    err.hidden = true;
    warn.hidden = true;
    out.textContent = "The request appears here once the form has a URL.";
    return;
  }
  const data = new URLSearchParams(new FormData(form));
  data.set("sample_type", document.getElementById("sample_type").value);
  data.set("id", form.dataset.id || "");
  try {
    const r = await fetch("/webhooks/preview", {
      method: "POST",
      headers: { "X-CSRF-Token": csrf() },
      body: data,
    });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const j = await r.json();
    if (j.error) {
      err.textContent = describeError(j.error);
      err.hidden = false;
      warn.hidden = true;
      return;
    }
    err.hidden = true;
    const q = j.request;
    let text = `${q.method} ${q.url}\n`;
    for (const h of q.headers) text += h + "\n";
    for (const h of q.added) text += "+ " + h + "\n";
    if (q.body) text += "\n" + q.body;
    out.textContent = text;
    warn.textContent = j.warning || "";
    warn.hidden = !j.warning;
  } catch (e) {
    err.textContent = `The preview could not be fetched (${e.message}).`;
    err.hidden = false;
  }
}

async function sendTest(button) {
  const result = document.getElementById("test-result");
  const type = document.getElementById("test-type").value;
  button.disabled = true;
  result.textContent = "Sending…";
  try {
    const r = await fetch(`/api/v1/webhooks/${button.dataset.id}/test`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: JSON.stringify({ type }),
    });
    const j = await r.json();
    result.replaceChildren();
    const card = document.createElement("div");
    card.className = "card";
    const line = document.createElement("p");
    if (!r.ok) {
      line.className = "bad";
      line.textContent = `Not sent: ${j.error}`;
    } else {
      line.className = j.outcome === "delivered" ? "ok" : "bad";
      line.textContent = `${j.outcome}` + (j.http_status ? ` · HTTP ${j.http_status}` : "") +
        ` · ${j.duration_ms} ms` + (j.error ? ` · ${j.error}` : "") + ` · event ${j.event_uuid}` +
        ` · ${j.event_type} from ${j.sample}`;
    }
    line.id = "test-outcome";
    card.append(line);
    if (j.detail) {
      const pre = document.createElement("pre");
      pre.textContent = `${j.detail.request_method} ${j.detail.request_url}\n${j.detail.request_headers}\n\n${j.detail.request_body}` +
        `\n\n--- response ---\n${j.detail.response_headers || ""}\n\n${j.detail.response_body || ""}`;
      card.append(pre);
    }
    result.append(card);
  } catch (e) {
    result.textContent = `The test could not be sent (${e.message}).`;
  } finally {
    button.disabled = false;
  }
}

function webhookForm() {
  const form = document.getElementById("webhook-form");
  if (!form) return;
  toggleSections(form);
  let timer = null;
  const schedule = () => { clearTimeout(timer); timer = setTimeout(() => updatePreview(form), 250); };
  form.addEventListener("input", schedule);
  form.addEventListener("change", () => { toggleSections(form); schedule(); });
  document.getElementById("sample_type").addEventListener("change", schedule);
  updatePreview(form);
  const test = document.getElementById("test-send");
  if (test) test.addEventListener("click", () => sendTest(test));
}

function liveLog() {
  const table = document.getElementById("log");
  if (!table || !table.dataset.live || !window.EventSource) return;
  const status = document.getElementById("live");
  // From the newest entry this page shows, so none written meanwhile is missed.
  const source = new EventSource(`/log/stream?after=${encodeURIComponent(table.dataset.last || "")}`);
  source.addEventListener("open", () => { status.textContent = "Live: new entries appear here."; });
  source.addEventListener("error", () => { status.textContent = "Live updates paused; retrying…"; });
  source.addEventListener("entries", async () => {
    const q = table.dataset.filters;
    const r = await fetch(`/log?${q}${q ? "&" : ""}fragment=rows`, { headers: { Accept: "text/html" } });
    // Logged out meanwhile: the answer is the login page, not rows.
    if (r.redirected || !r.ok) { source.close(); location.reload(); return; }
    const tbody = document.getElementById("log-rows");
    const seen = new Set([...tbody.querySelectorAll("tr[data-entry]")].map((tr) => tr.dataset.entry));
    tbody.innerHTML = await r.text();
    tbody.querySelectorAll("tr[data-entry]").forEach((tr) => { if (!seen.has(tr.dataset.entry)) tr.classList.add("fresh"); });
  });
}

document.addEventListener("DOMContentLoaded", () => {
  webhookForm();
  liveLog();
});
