// The page of `diffusers serve`: submits a job, follows its server-sent events (progress, previews, result), lists the history.
"use strict";
const $ = id => document.getElementById(id);
const fields = ["prompt", "negative_prompt", "width", "height", "steps", "guidance_scale"];
let current = null, events = null;

function key() { return $("api_key").value || localStorage.getItem("api_key") || ""; }
function withKey(url) { const k = key(); return k ? url + (url.includes("?") ? "&" : "?") + "api_key=" + encodeURIComponent(k) : url; }
async function api(path, options = {}) {
  options.headers = Object.assign({ "Content-Type": "application/json" }, options.headers || {});
  if (key()) options.headers["Authorization"] = "Bearer " + key();
  const r = await fetch(path, options);
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error((body.error && body.error.message) || r.statusText);
  return body;
}
function showError(e) { $("error").textContent = e ? String(e.message || e) : ""; }
function busy(on) { $("generate").disabled = on; $("cancel").disabled = !on; }

async function loadLists() {
  try {
    const models = await api("/v1/models");
    $("model").innerHTML = "";
    for (const m of models.data) $("model").add(new Option(m.id + (m.loaded ? "" : " (not loaded)"), m.id));
    const s = await api("/v1/schedulers");
    for (const a of s.aliases) $("scheduler").add(new Option(a, a));
    if (s.loras.length) { $("lora").innerHTML = ""; for (const l of s.loras) $("lora").add(new Option(l, l)); }
    $("status").textContent = models.data.length + " model(s)";
    showError(null);
  } catch (e) { showError(e); }
}

function request() {
  const r = { prompt: $("prompt").value, model: $("model").value || undefined,
    size: $("width").value + "x" + $("height").value, steps: +$("steps").value, guidance_scale: +$("guidance_scale").value };
  if ($("negative_prompt").value) r.negative_prompt = $("negative_prompt").value;
  if ($("scheduler").value) r.scheduler = $("scheduler").value;
  if (!$("random_seed").checked && $("seed").value !== "") r.seed = +$("seed").value;
  const loras = [...$("lora").selectedOptions].map(o => o.value).filter(v => v);
  if (loras.length) r.loras = loras;
  // four numbers, or what the user typed as it is (the server answers what is wrong with it, naming freeu)
  const freeu = $("freeu").value.trim();
  if (freeu) r.freeu = freeu.split(",").map(v => v.trim() !== "" && isFinite(v) ? Number(v) : v.trim());
  return r;
}

async function generate(ev) {
  ev.preventDefault();
  showError(null);
  if ($("api_key").value) localStorage.setItem("api_key", $("api_key").value);
  busy(true);
  $("progress").value = 0; $("progress_text").textContent = "submitting…"; $("result").innerHTML = "";
  try {
    const job = await api("/v1/jobs", { method: "POST", body: JSON.stringify(request()) });
    current = job.id;
    follow(job.id);
  } catch (e) { showError(e); busy(false); $("progress_text").textContent = ""; }
}

function follow(id) {
  events = new EventSource(withKey("/v1/jobs/" + id + "/events"));
  events.addEventListener("queued", e => { const d = JSON.parse(e.data); $("progress_text").textContent = d.position ? "queued, position " + d.position : "starting…"; });
  events.addEventListener("started", () => { $("progress_text").textContent = "loading the model / encoding the prompt…"; });
  events.addEventListener("step", e => {
    const d = JSON.parse(e.data);
    $("progress").value = Math.round(100 * d.step / d.total);
    $("progress_text").textContent = `step ${d.step}/${d.total} · ${d.seconds_per_step.toFixed(2)} s/step · ETA ${d.eta_seconds.toFixed(1)} s`;
  });
  events.addEventListener("preview", e => { $("preview").src = JSON.parse(e.data).image; });
  events.addEventListener("done", e => {
    const d = JSON.parse(e.data);
    $("progress").value = 100;
    $("progress_text").textContent = `done in ${d.seconds} s · seed ${d.seed}`;
    $("preview").removeAttribute("src");
    $("result").innerHTML = "";
    for (const url of d.images) { const img = new Image(); img.src = withKey(url); img.className = "result"; $("result").append(img); }
    finish(); loadHistory();
  });
  events.addEventListener("failed", e => { showError(JSON.parse(e.data).message); $("progress_text").textContent = "failed"; finish(); });
  events.addEventListener("cancelled", () => { $("progress_text").textContent = "cancelled"; finish(); });
  // the stream lost: the browser reconnects by itself while it can (readyState CONNECTING); once it gives up (the server
  // restarted and forgot the job: 404, or a wrong key: 401) the job's outcome is asked for once, else the page is freed
  events.onerror = async () => {
    if (!events || events.readyState !== EventSource.CLOSED) return;
    try {
      const j = await api("/v1/jobs/" + id);
      if (j.status === "done" && j.images) {
        $("result").innerHTML = "";
        for (const url of j.images) { const img = new Image(); img.src = withKey(url); img.className = "result"; $("result").append(img); }
        $("progress_text").textContent = "done";
      } else { showError(j.error || "the job ended: " + j.status); $("progress_text").textContent = j.status; }
    } catch (e) { showError("lost the job's progress: " + e.message); $("progress_text").textContent = ""; }
    finish(); loadHistory();
  };
}
function finish() { if (events) events.close(); events = null; current = null; busy(false); }

async function cancel() {
  if (!current) return;
  try { await api("/v1/jobs/" + current, { method: "DELETE" }); } catch (e) { showError(e); }
}

function useAgain(p) {
  for (const f of fields) if (p[f] !== undefined && p[f] !== null) $(f).value = p[f];
  if (p.model) $("model").value = p.model;
  $("scheduler").value = p.scheduler || "";
  $("random_seed").checked = false; $("seed").value = p.seed;
  const loras = p.loras ? Object.keys(p.loras) : [];
  for (const o of $("lora").options) o.selected = loras.includes(o.value);
  $("freeu").value = p.freeu ? p.freeu.join(",") : "";
  window.scrollTo(0, 0);
}

async function loadHistory() {
  try {
    const h = await api("/v1/history?limit=60");
    const g = $("gallery"); g.innerHTML = "";
    for (const j of h.data.filter(j => j.status === "done")) {
      const div = document.createElement("div"); div.className = "item";
      const img = new Image(); img.src = withKey("/v1/results/" + j.images[0]); img.title = j.parameters.prompt;
      const text = document.createElement("div");
      text.textContent = `${j.parameters.prompt.slice(0, 60)} · ${j.parameters.width}x${j.parameters.height} · ${j.parameters.steps} steps · seed ${j.parameters.seed}`;
      const again = document.createElement("button"); again.type = "button"; again.textContent = "use these settings again";
      again.onclick = () => useAgain(j.parameters);
      div.append(img, text, again); g.append(div);
    }
  } catch (e) { showError(e); }
}

$("form").addEventListener("submit", generate);
$("cancel").addEventListener("click", cancel);
$("random_seed").addEventListener("change", () => { if ($("random_seed").checked) $("seed").value = ""; });
$("seed").addEventListener("input", () => { $("random_seed").checked = $("seed").value === ""; });
$("api_key").value = localStorage.getItem("api_key") || "";
loadLists(); loadHistory();
