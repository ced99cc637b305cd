// The page of `ciaosr serve`: plain JavaScript, no build step, nothing from elsewhere.
// The server checks everything (the same code as `ciaosr upscale`); this page only
// asks it, and shows its answers.
"use strict";

const $ = (id) => document.getElementById(id);
const S = {
  config: null,
  file: null,
  fileURL: null,
  dims: null,        // the input's {w, h} as the browser reads it (null: it cannot show this format)
  out: null,         // the size shown in the viewer {w, h}
  sizeOK: false,
  job: null,         // the job's last status
  xhr: null,
  pollTimer: null,
  started: 0,
  zoom: "fit",
  split: 50,
  busy: false,
};
const WRITE = { "X-Ciaosr": "1" };
const TERMINAL = ["done", "failed", "cancelled"];

// ---------------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------------
function bytes(n) {
  const one = (x) => x.toFixed(1).replace(/\.0$/, "");
  if (n < 1024) return `${n} bytes`;
  if (n < 1024 * 1024) return `${one(n / 1024)} KiB`;
  return `${one(n / 1024 / 1024)} MiB`;
}
function megapixels(n) {
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)} MP` : `${(n / 1e6).toFixed(2)} MP`;
}
function px(w, h) { return `${w} × ${h} px`; }
async function errorText(response) {
  try {
    const body = await response.json();
    if (body && body.error) return body.error;
  } catch (e) { /* not JSON */ }
  return `the server answered ${response.status} ${response.statusText}`;
}

// ---------------------------------------------------------------------------------
// Start: what the server offers
// ---------------------------------------------------------------------------------
async function init() {
  let config;
  try {
    const r = await fetch("/api/config");
    if (!r.ok) throw new Error(await errorText(r));
    config = await r.json();
  } catch (e) {
    showError(`Cannot reach the server: ${e.message}`);
    return;
  }
  S.config = config;
  $("server-info").textContent = `ciaosr ${config.version} · ${config.device}`;
  const model = $("model");
  for (const m of config.models) {
    const o = new Option(m.id + (m.default ? " (default)" : m.source === "folder" ? " (models folder)" : ""), m.id);
    if (m.default) o.selected = true;
    model.add(o);
  }
  const precision = $("precision");
  for (const p of config.precisions) {
    const o = new Option(p, p);
    if (p === "fp32") o.selected = true;
    precision.add(o);
  }
  const L = config.limits;
  $("limits").textContent =
    `This server takes images up to ${bytes(L.max_upload_bytes)} and makes outputs up to ` +
    `${megapixels(L.max_pixels)}; one job runs at a time, ${L.max_queue} more may wait. ` +
    `Files are deleted from the server after the download, or ${Math.round(L.keep_seconds / 60)} minutes after the job ends.`;
  wire();
  syncMode();
}

// ---------------------------------------------------------------------------------
// The image
// ---------------------------------------------------------------------------------
function setFile(file) {
  if (!file || S.busy) return;
  clearError();
  S.file = file;
  S.dims = null;
  if (S.fileURL) URL.revokeObjectURL(S.fileURL);
  S.fileURL = URL.createObjectURL(file);
  $("drop").classList.add("has-file");
  $("drop-text").innerHTML = "";
  const strong = document.createElement("strong");
  strong.textContent = file.name;
  $("drop-text").append(strong, document.createElement("br"), "click or drop to change");
  $("file-info").textContent = bytes(file.size);
  if (file.size > S.config.limits.max_upload_bytes) {
    showError(`${file.name} is ${bytes(file.size)}: over this server's upload limit of ${bytes(S.config.limits.max_upload_bytes)}.`);
  }
  showResultInfo(null);
  setStatus("idle", "Ready: choose the size, then Upscale.");
  const probe = new Image();
  probe.onload = () => {
    S.dims = { w: probe.naturalWidth, h: probe.naturalHeight };
    $("file-info").textContent = `${px(S.dims.w, S.dims.h)} · ${bytes(file.size)}`;
    showInput(S.fileURL, S.dims);
    prefillSize();
    updateSize();
  };
  probe.onerror = () => {
    $("file-info").textContent = `${bytes(file.size)} · the browser cannot show this format; the server will read it`;
    showInput(null, null);
    updateSize();
  };
  probe.src = S.fileURL;
  updateSize();
}

// ---------------------------------------------------------------------------------
// Output size: the server computes it (the command line's rule and limits)
// ---------------------------------------------------------------------------------
function mode() { return document.querySelector("input[name=mode]:checked").value; }

function resizeParams() {
  if (mode() === "scale") {
    const x = $("scale-x-num").value.trim();
    const y = $("scale-y-num").value.trim();
    return { scale: $("asym").checked ? `${x}x${y}` : x };
  }
  const w = $("size-w").value.trim(), h = $("size-h").value.trim();
  if ($("keep-aspect").checked) return { size: S.sizeDriver === "h" ? `x${h}` : `${w}x` };
  return { size: `${w}x${h}` };
}

function prefillSize() {
  if (!S.dims || $("size-w").value || $("size-h").value) return;
  $("size-w").value = Math.round(S.dims.w * 2);
  S.sizeDriver = "w";
}

let sizeTimer = null;
function updateSize() {
  clearTimeout(sizeTimer);
  S.sizeOK = false;  // until the server has checked the new values
  refreshButtons();
  sizeTimer = setTimeout(checkSize, 120);
}

async function checkSize() {
  const out = $("size-out");
  S.sizeOK = false;
  if (!S.file) { out.textContent = ""; refreshButtons(); return; }
  if (!S.dims) { out.textContent = ""; S.sizeOK = true; refreshButtons(); return; }
  const q = new URLSearchParams({ width: S.dims.w, height: S.dims.h, ...resizeParams() });
  try {
    const r = await fetch(`/api/size?${q}`);
    if (r.ok) {
      const s = await r.json();
      out.classList.remove("bad");
      out.textContent = `→ ${px(s.width, s.height)} (${megapixels(s.pixels)})`;
      if ($("keep-aspect").checked && mode() === "size") {
        if (S.sizeDriver === "h") { $("size-w").value = ""; $("size-w").placeholder = s.width; }
        else { $("size-h").value = ""; $("size-h").placeholder = s.height; }
      }
      S.sizeOK = true;
    } else {
      out.classList.add("bad");
      out.textContent = await errorText(r);
    }
  } catch (e) {
    out.classList.add("bad");
    out.textContent = `cannot reach the server: ${e.message}`;
  }
  refreshButtons();
}

function syncMode() {
  const byScale = mode() === "scale";
  $("by-scale").hidden = !byScale;
  $("by-size").hidden = byScale;
  $("scale-y-box").hidden = !$("asym").checked;
  $("scale-x-label").textContent = $("asym").checked ? "Width factor" : "Factor";
  if (!byScale) prefillSize();
  updateSize();
}

function linkRange(range, num) {
  range.addEventListener("input", () => { num.value = range.value; updateSize(); });
  num.addEventListener("input", () => {
    const v = parseFloat(num.value);
    if (Number.isFinite(v)) range.value = Math.min(Math.max(v, range.min), range.max);
    updateSize();
  });
}

// ---------------------------------------------------------------------------------
// Running a job
// ---------------------------------------------------------------------------------
function jobParams() {
  const q = new URLSearchParams({ name: S.file.name, model: $("model").value, precision: $("precision").value,
                                  format: $("format").value, ...resizeParams() });
  const tile = $("tile").value.trim();
  if (tile) q.set("tile", tile);
  return q;
}

function run(event) {
  event.preventDefault();
  if (!S.file || S.busy) return;
  clearError();
  setBusy(true);
  showResultInfo(null);
  if (S.dims) showInput(S.fileURL, S.dims);
  S.started = performance.now();
  setStatus("uploading", "Uploading…", 0);
  const xhr = new XMLHttpRequest();
  S.xhr = xhr;
  xhr.open("POST", `/api/jobs?${jobParams()}`);
  xhr.setRequestHeader("X-Ciaosr", "1");
  xhr.setRequestHeader("Content-Type", "application/octet-stream");
  xhr.upload.onprogress = (e) => {
    if (e.lengthComputable) setStatus("uploading", `Uploading… ${Math.round(100 * e.loaded / e.total)}%`, e.loaded / e.total);
  };
  xhr.onload = () => {
    S.xhr = null;
    let body = null;
    try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
    if (xhr.status === 202 && body) {
      S.job = body;
      renderJob(body);
      schedulePoll();
    } else {
      fail(body && body.error ? body.error : `the server answered ${xhr.status}`);
    }
  };
  xhr.onerror = () => { S.xhr = null; fail("the upload failed: the server cannot be reached"); };
  xhr.onabort = () => { S.xhr = null; setBusy(false); setStatus("cancelled", "Cancelled."); };
  xhr.send(S.file);
}

function schedulePoll() {
  clearTimeout(S.pollTimer);
  const wait = S.job && S.job.state === "queued" ? 800 : 300;
  S.pollTimer = setTimeout(poll, wait);
}

async function poll() {
  if (!S.job) return;
  try {
    const r = await fetch(`/api/jobs/${S.job.id}`);
    if (!r.ok) { fail(await errorText(r)); return; }
    S.job = await r.json();
  } catch (e) {
    schedulePoll();  // a moment without the server: keep asking
    return;
  }
  renderJob(S.job);
  if (!TERMINAL.includes(S.job.state)) schedulePoll();
}

const PHASES = {
  "loading model": "Loading the model…",
  reading: "Reading the image…",
  upscaling: "Upscaling…",
  writing: "Writing the result…",
};

function renderJob(job) {
  const seconds = Math.round((performance.now() - S.started) / 1000);
  if (job.state === "queued") {
    const ahead = job.position - 1;
    setStatus("queued", `Waiting in line: position ${job.position}` +
      (ahead > 0 ? ` (${ahead} job${ahead > 1 ? "s" : ""} before yours, one running)` : " (next, after the running job)"), null);
  } else if (job.state === "running") {
    let text = PHASES[job.phase] || "Working…";
    let fraction = null;
    const p = job.progress;
    if (job.phase === "upscaling" && p && p.tiles_total > 0) {
      fraction = p.fraction;
      text = p.tiles_total > 1 ? `Upscaling: tile ${Math.min(p.tiles_done + 1, p.tiles_total)} of ${p.tiles_total}`
                               : `Upscaling: ${Math.round(100 * p.fraction)}%`;
    }
    if (S.cancelling) text = "Cancelling…";
    setStatus("running", `${text} · ${seconds} s`, fraction);
  } else if (job.state === "done") {
    setBusy(false);
    setStatus("done", `Done in ${job.seconds.toFixed(2)} s.`);
    showResult(job);
  } else if (job.state === "cancelled") {
    setBusy(false);
    setStatus("cancelled", "Cancelled: the server stopped the job and deleted its files.");
  } else if (job.state === "failed") {
    fail(job.error);
  }
}

async function cancel() {
  if (S.xhr) { S.xhr.abort(); return; }
  if (!S.job || TERMINAL.includes(S.job.state)) return;
  S.cancelling = true;
  $("cancel").disabled = true;
  try {
    const r = await fetch(`/api/jobs/${S.job.id}`, { method: "DELETE", headers: WRITE });
    if (r.ok) { S.job = await r.json(); renderJob(S.job); }
  } catch (e) { /* the next poll tells */ }
}

function fail(message) {
  clearTimeout(S.pollTimer);
  setBusy(false);
  setStatus("failed", "Failed.");
  showError(message);
}

// ---------------------------------------------------------------------------------
// Status, buttons
// ---------------------------------------------------------------------------------
function setStatus(state, text, fraction) {
  $("status").dataset.state = state;
  $("status-text").textContent = text;
  const bar = $("progress");
  const active = ["uploading", "queued", "running"].includes(state);
  bar.hidden = !active;
  const busy = active && (fraction === null || fraction === undefined);  // striped: no fraction known
  const fill = $("progress-bar"), width = Math.round(100 * (fraction || 0));
  const jump = width < (S.barWidth || 0) || bar.classList.contains("busy") !== busy;
  bar.classList.toggle("busy", busy);
  if (jump) {  // a new stage starts: jump there instead of sliding
    fill.style.transition = "none";
    fill.style.width = `${width}%`;
    void fill.offsetWidth;
    fill.style.transition = "";
  }
  fill.style.width = `${width}%`;
  S.barWidth = width;
}

function setBusy(busy) {
  S.busy = busy;
  S.cancelling = false;
  $("cancel").hidden = !busy;
  $("cancel").disabled = false;
  for (const el of $("controls").querySelectorAll("input, select")) el.disabled = busy;
  refreshButtons();
}

function refreshButtons() {
  $("run").disabled = S.busy || !S.file || !S.sizeOK;
  $("run").textContent = S.busy ? "Working…" : "Upscale";
}

function showError(message) {
  const el = $("error");
  el.textContent = message;
  el.hidden = false;
}
function clearError() { $("error").hidden = true; $("error").textContent = ""; }

// ---------------------------------------------------------------------------------
// The viewer: before / after under a slider, fit or 1:1
// ---------------------------------------------------------------------------------
function showInput(url, dims) {
  const before = $("before"), after = $("after");
  after.hidden = true;
  after.removeAttribute("src");
  $("divider").hidden = true;
  $("tag-before").hidden = $("tag-after").hidden = true;
  $("split").hidden = true;
  $("tools").hidden = !url;
  if (!url) { $("stage").hidden = true; $("placeholder").hidden = false; return; }
  before.src = url;
  S.out = dims;
  $("placeholder").hidden = true;
  $("stage").hidden = false;
  setZoom("fit");
}

function showResult(job) {
  const before = $("before"), after = $("after");
  let pending = 2;
  const ready = () => {
    if (--pending > 0) return;
    S.out = { w: job.output.width, h: job.output.height };
    after.hidden = false;
    $("divider").hidden = false;
    $("tag-before").hidden = $("tag-after").hidden = false;
    $("split").hidden = false;
    $("placeholder").hidden = true;
    $("stage").hidden = false;
    $("tools").hidden = false;
    setSplit(50);
    setZoom("fit");
  };
  before.onload = after.onload = ready;
  before.onerror = after.onerror = () => showError("the result could not be shown (it may have been deleted already)");
  before.src = `/api/jobs/${job.id}/input`;
  after.src = `/api/jobs/${job.id}/preview`;
  showResultInfo(job);
}

function showResultInfo(job) {
  const info = $("result-info"), link = $("download");
  info.textContent = "";
  if (!job) { link.hidden = true; return; }
  const o = job.output;
  const parts = [[`${px(o.width, o.height)}`, true], [`from ${px(job.input.width, job.input.height)}`],
                 [o.resize], [`${job.seconds.toFixed(2)} s`], [`${o.format} ${o.bit_depth}-bit, ${bytes(o.bytes)}`]];
  parts.forEach(([text, strong], i) => {
    if (i) info.append(" · ");
    const el = document.createElement(strong ? "b" : "span");
    el.textContent = text;
    info.append(el);
  });
  link.hidden = false;
  link.textContent = "Download";
  link.href = `/api/jobs/${job.id}/result`;
  link.setAttribute("download", o.name);
  link.classList.add("primary");
  link.title = `${o.name}: the server deletes its copy once it is downloaded`;
  link.onclick = () => setTimeout(() => {
    link.removeAttribute("href");
    link.textContent = "Downloaded";
    link.classList.remove("primary");
    link.title = "The server has deleted its copy; run again for another";
  }, 0);
}

function setSplit(percent) {
  S.split = Math.min(100, Math.max(0, percent));
  $("after").style.clipPath = `inset(0 0 0 ${S.split}%)`;
  $("divider").style.left = `${S.split}%`;
  $("split").value = S.split;
}

function setZoom(zoom, focus) {
  S.zoom = zoom;
  const viewer = $("viewer"), stage = $("stage");
  viewer.classList.toggle("fit", zoom === "fit");
  viewer.classList.toggle("one", zoom === "one");
  $("zoom-fit").classList.toggle("on", zoom === "fit");
  $("zoom-1").classList.toggle("on", zoom === "one");
  layout();
  if (zoom === "one" && focus) {
    viewer.scrollLeft = focus.x * stage.offsetWidth - viewer.clientWidth / 2 + stage.offsetLeft;
    viewer.scrollTop = focus.y * stage.offsetHeight - viewer.clientHeight / 2 + stage.offsetTop;
  }
}

function layout() {
  if (!S.out) return;
  const viewer = $("viewer"), stage = $("stage");
  const { w, h } = S.out;
  let k;
  if (S.zoom === "one") {
    k = 1 / (window.devicePixelRatio || 1);  // one image pixel per screen pixel
  } else {
    k = Math.min((viewer.clientWidth - 24) / w, (viewer.clientHeight - 24) / h);
  }
  stage.style.width = `${Math.max(1, Math.round(w * k))}px`;
  stage.style.height = `${Math.max(1, Math.round(h * k))}px`;
}

function wireViewer() {
  const viewer = $("viewer"), stage = $("stage");
  let drag = null;
  const fraction = (e) => {
    const r = stage.getBoundingClientRect();
    return { x: (e.clientX - r.left) / r.width, y: (e.clientY - r.top) / r.height };
  };
  stage.addEventListener("pointerdown", (e) => {
    if ($("after").hidden) return;
    const onGrip = e.target.classList.contains("grip") || e.target.id === "divider";
    if (S.zoom === "fit" || onGrip) {
      drag = { kind: "split" };
      setSplit(100 * fraction(e).x);
    } else {
      drag = { kind: "pan", x: e.clientX, y: e.clientY, left: viewer.scrollLeft, top: viewer.scrollTop };
      viewer.classList.add("panning");
    }
    stage.setPointerCapture(e.pointerId);
    e.preventDefault();
  });
  stage.addEventListener("pointermove", (e) => {
    if (!drag) return;
    if (drag.kind === "split") setSplit(100 * fraction(e).x);
    else {
      viewer.scrollLeft = drag.left - (e.clientX - drag.x);
      viewer.scrollTop = drag.top - (e.clientY - drag.y);
    }
  });
  const end = () => { drag = null; viewer.classList.remove("panning"); };
  stage.addEventListener("pointerup", end);
  stage.addEventListener("pointercancel", end);
  stage.addEventListener("dblclick", (e) => {
    if (S.zoom === "fit") setZoom("one", fraction(e));
    else setZoom("fit");
  });
  $("split").addEventListener("input", () => setSplit(parseFloat($("split").value)));
  $("zoom-fit").addEventListener("click", () => setZoom("fit"));
  $("zoom-1").addEventListener("click", () => setZoom("one", { x: S.split / 100, y: 0.5 }));
  $("pixels").addEventListener("change", () => $("before").classList.toggle("pixels", $("pixels").checked));
  window.addEventListener("resize", layout);
}

// ---------------------------------------------------------------------------------
// Wiring
// ---------------------------------------------------------------------------------
function wire() {
  $("file").addEventListener("change", () => setFile($("file").files[0]));
  const drop = $("drop");
  for (const type of ["dragenter", "dragover"]) {
    document.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  document.addEventListener("dragleave", (e) => { if (!e.relatedTarget) drop.classList.remove("over"); });
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) setFile(e.dataTransfer.files[0]);
  });
  for (const r of document.querySelectorAll("input[name=mode]")) r.addEventListener("change", syncMode);
  $("asym").addEventListener("change", () => {
    if ($("asym").checked) {  // the height starts from the width's factor
      $("scale-y-num").value = $("scale-x-num").value;
      $("scale-y").value = $("scale-x").value;
    }
    syncMode();
  });
  linkRange($("scale-x"), $("scale-x-num"));
  linkRange($("scale-y"), $("scale-y-num"));
  $("size-w").addEventListener("input", () => { S.sizeDriver = "w"; updateSize(); });
  $("size-h").addEventListener("input", () => { S.sizeDriver = "h"; updateSize(); });
  $("keep-aspect").addEventListener("change", () => {
    if (!$("keep-aspect").checked) {
      for (const id of ["size-w", "size-h"]) if (!$(id).value) $(id).value = $(id).placeholder;
    }
    updateSize();
  });
  $("controls").addEventListener("submit", run);
  $("cancel").addEventListener("click", cancel);
  wireViewer();
}

init();
