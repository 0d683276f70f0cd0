// Vestige pages: drag-and-drop uploads and live analysis progress. No libraries, no network but this site.
"use strict";

function setupUpload() {
  const form = document.getElementById("upload");
  if (!form) return;
  const drop = form.querySelector("[data-drop]");
  const input = form.querySelector("input[type=file]");
  const chosen = form.querySelector("[data-chosen]");
  const show = () => {
    const names = Array.from(input.files).map((f) => f.name);
    chosen.textContent = names.length ? `${names.length} chosen: ${names.slice(0, 8).join(", ")}${names.length > 8 ? ", …" : ""}` : "";
  };
  input.addEventListener("change", show);
  ["dragenter", "dragover"].forEach((name) => drop.addEventListener(name, (event) => {
    event.preventDefault();
    drop.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((name) => drop.addEventListener(name, () => drop.classList.remove("over")));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    if (event.dataTransfer && event.dataTransfer.files.length) {
      input.files = event.dataTransfer.files;
      show();
    }
  });
}

function setupPolling() {
  const section = document.querySelector("[data-poll]");
  if (!section) return;
  const active = (s) => s === "queued" || s === "running";
  const rows = () => Array.from(section.querySelectorAll("[data-analysis]"));
  if (!rows().some((row) => active(row.querySelector("[data-field=status]").textContent.trim()))) return;
  const tick = async () => {
    let data;
    try {
      const response = await fetch(section.dataset.poll, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      data = await response.json();
    } catch (error) {
      setTimeout(tick, 5000);
      return;
    }
    let still = false;
    for (const a of data.analyses || []) {
      const row = section.querySelector(`[data-analysis="${a.id}"]`);
      if (!row) { window.location.reload(); return; }
      const status = row.querySelector("[data-field=status]");
      status.textContent = a.status;
      status.className = `status ${a.status}`;
      row.querySelector("[data-field=progress]").textContent = `${a.progress_done} / ${a.progress_total}`;
      const bar = row.querySelector("progress");
      bar.max = a.progress_total || 1;
      bar.value = a.progress_done;
      const eta = row.querySelector("[data-field=eta]");
      if (eta) eta.textContent = a.by_detector ? `${a.eta} left` : "";
      const list = row.querySelector("[data-field=by-detector]");
      if (list && a.by_detector) {
        list.replaceChildren(...a.by_detector.map((d) => {
          const item = document.createElement("li");
          item.textContent = `${d.detector}: ${d.done}/${d.total} ${d.status}${d.eta ? `, ${d.eta} left` : ""}`;
          return item;
        }));
      }
      const waiting = section.querySelector(`[data-waiting="${a.id}"]`);
      if (waiting) {
        waiting.hidden = !a.waiting;
        waiting.querySelector("[data-field=waiting]").textContent = a.waiting || "";
      }
      still = still || active(a.status);
    }
    if (still) setTimeout(tick, 2000);
    else window.location.reload();  // verdicts are merged: show them
  };
  setTimeout(tick, 2000);
}

document.addEventListener("DOMContentLoaded", () => {
  setupUpload();
  setupPolling();
});
