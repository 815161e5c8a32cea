"""The search page served at /: a query box, a mode switch, results with scores and text.

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
  #status.error { color: #b00020; }
  #k { width: 4rem; }
  #api-key { width: 9rem; }
"""

SCRIPT = """
const form = document.getElementById("search-form");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const status = document.getElementById("status");
  const results = document.getElementById("results");
  const body = { query: document.getElementById("query").value, k: Number(document.getElementById("k").value),
                 rerank: document.getElementById("rerank").checked, text: true };
  const mode = document.getElementById("mode").value;
  if (mode) body.mode = mode;
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
});
"""

SEARCH_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>rankkit search</title>
<style>""" + STYLE + """</style>
</head>
<body>
<h1>rankkit</h1>
<form id="search-form">
  <input id="query" name="query" type="search" placeholder="Search..." autofocus required>
  <select id="mode" name="mode" aria-label="mode">
    <option value="">default</option><option value="dense">dense</option>
    <option value="bm25">bm25</option><option value="hybrid">hybrid</option>
  </select>
  <label>k <input id="k" name="k" type="number" value="10" min="1" max="1000"></label>
  <label><input id="rerank" type="checkbox"> rerank</label>
  <input id="api-key" type="password" placeholder="API key (if any)">
  <button id="go" type="submit">Search</button>
</form>
<p id="status" role="status"></p>
<div id="results"></div>
<script>""" + SCRIPT + """</script>
</body>
</html>
"""

PAGE_CSP = (f"default-src 'none'; script-src {csp_hash(SCRIPT)}; style-src {csp_hash(STYLE)}; connect-src 'self'; "
            "img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
