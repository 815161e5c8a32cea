"""The search page served at /: a query box, a mode switch (the server's modes, from /health, its
default named), results with scores and text. The search is kept in the address bar (?q=...&mode=
...&k=...&rerank=1) and run when the page opens with one, so a result page can be shared or
reloaded; the API key never goes into the address.

Its one inline script and one inline style are exactly SCRIPT and STYLE, allowed by their hashes
in PAGE_CSP; nothing else may run, load or frame it. Results are written with textContent,
never as HTML."""

from rankkit.serve.security import csp_hash

STYLE = """
  body { font-family: system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  form { display: flex; gap: .5rem; flex-wrap: wrap; align-items: center; }
  #query { flex: 1 1 20rem; font-size: 1.1rem; padding: .4rem; }
  button { font-size: 1rem; padding: .4rem 1rem; }
  .hit { border-bottom: 1px solid #ddd; padding: .6rem 0; }
  .meta { color: #666; font-size: .85rem; }
  #status.error, .warn { color: #b00020; }
  #k { width: 4rem; }
  #api-key { width: 9rem; }
"""

SCRIPT = """
const form = document.getElementById("search-form");
const query = document.getElementById("query");
const modeSelect = document.getElementById("mode");
const kInput = document.getElementById("k");
const rerank = document.getElementById("rerank");
function option(value, label) {
  const item = document.createElement("option");
  item.value = value;
  item.textContent = label;
  return item;
}

// The modes this server serves, from /health; the first is what a search without a mode uses.
async function loadModes() {
  try {
    const response = await fetch("/health");
    const data = await response.json();
    if (!response.ok || !Array.isArray(data.modes) || !data.modes.length) return;
    modeSelect.replaceChildren(...data.modes.map((mode, i) => option(mode, i ? mode : mode + " (default)")));
    modeSelect.value = data.modes[0];
    showReranker(data);
  } catch (error) {
    // still loading or unreachable: keep the page's own choices
  }
}

// Beside the rerank box: how the server's reranker did on its dev set, or that nothing says.
function showReranker(data) {
  const note = document.getElementById("reranker-note");
  if (!data.reranker) {
    note.textContent = "(no reranker)";
    return;
  }
  const dev = data.reranker_dev;
  if (!dev) {
    note.textContent = "(reranker without a dev record: its quality is unknown)";
    return;
  }
  const figures = dev.measure + " " + dev.reranker.toFixed(3) + " vs " + dev.first_stage.toFixed(3) + " first stage";
  note.textContent = dev.improves ? "(dev " + figures + ")" : "(WORSE on dev: " + figures + ")";
  note.className = dev.improves ? "meta" : "meta warn";
}

function selectMode(mode) {
  if (!mode) return;
  if (![...modeSelect.options].some((item) => item.value === mode)) modeSelect.append(option(mode, mode));
  modeSelect.value = mode;
}

// The search in the address bar (q, mode, k, rerank), so a result page can be shared or reloaded.
function writeUrl() {
  const params = new URLSearchParams();
  params.set("q", query.value);
  if (modeSelect.value) params.set("mode", modeSelect.value);
  if (kInput.value !== "10") params.set("k", kInput.value);
  if (rerank.checked) params.set("rerank", "1");
  history.replaceState(null, "", "?" + params.toString());
}

async function runSearch() {
  const status = document.getElementById("status");
  const results = document.getElementById("results");
  const body = { query: query.value, k: Number(kInput.value), rerank: rerank.checked, text: true };
  if (modeSelect.value) body.mode = modeSelect.value;
  const headers = { "Content-Type": "application/json" };
  const key = document.getElementById("api-key").value;
  if (key) headers["X-API-Key"] = key;
  status.className = ""; status.textContent = "searching...";
  const started = performance.now();
  const response = await fetch("/search", { method: "POST", headers, body: JSON.stringify(body) });
  const data = await response.json();
  results.replaceChildren();
  if (!response.ok) {
    status.className = "error";
    status.textContent = data.error.message + ". Fix: " + data.error.fix;
    return;
  }
  status.textContent = data.hits.length + " results (" + data.mode + (data.reranked ? ", reranked" : "") +
                       ") in " + Math.round(performance.now() - started) + " ms";
  for (const hit of data.hits) {
    const item = document.createElement("div");
    item.className = "hit";
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = "#" + hit.rank + "  " + hit.docid + "  score " + hit.score.toFixed(4);
    const text = document.createElement("div");
    text.className = "text";
    text.textContent = hit.text || "";
    item.append(meta, text);
    results.append(item);
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  writeUrl();
  return runSearch();
});

loadModes().then(() => {
  const params = new URLSearchParams(window.location.search);
  selectMode(params.get("mode"));
  if (params.get("k")) kInput.value = params.get("k");
  rerank.checked = ["1", "true"].includes(params.get("rerank"));
  if (params.get("q")) {
    query.value = params.get("q");
    return runSearch();
  }
});
"""

SEARCH_PAGE = (
    """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>rankkit search</title>
<style>"""
    + STYLE
    + """</style>
</head>
<body>
<h1>rankkit</h1>
<form id="search-form">
  <input id="query" name="query" type="search" placeholder="Search..." autofocus required>
  <select id="mode" name="mode" aria-label="mode">
    <option value="">default (the first index)</option>
  </select>
  <label>k <input id="k" name="k" type="number" value="10" min="1" max="1000"></label>
  <label><input id="rerank" type="checkbox"> rerank</label> <span id="reranker-note" class="meta"></span>
  <input id="api-key" type="password" placeholder="API key (if any)">
  <button id="go" type="submit">Search</button>
</form>
<p id="status" role="status"></p>
<div id="results"></div>
<script>"""
    + SCRIPT
    + """</script>
</body>
</html>
"""
)

PAGE_CSP = (
    f"default-src 'none'; script-src {csp_hash(SCRIPT)}; style-src {csp_hash(STYLE)}; connect-src 'self'; "
    "img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
