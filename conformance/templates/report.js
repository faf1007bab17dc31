/* The matrix's search, filters, sorting, drill-down and trends (conformance/html.py inlines this file).

   The page's whole state lives in the URL hash, e.g. #q=exp&status=failing&hmin=0.5&kind=op&dtype=float32
   &device=cpu&overridden=1&sort=-headroom&open=exp|float32|cpu: a link reproduces a view, and every control,
   click and link only writes the hash; the one "hashchange" handler renders. So a headless browser loading
   file://...#... exercises the very path a click takes. Data: the JSON of html.page_data (ids below). */
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("report-data").textContent);
  const S = D.strings;
  const SVG = "http://www.w3.org/2000/svg";
  const FIXED = 4; // entry, kind, status, worst headroom: the columns before the dtype/device cells
  // positions in a case array and in a check array (html._cases, html._check_row)
  const C = {status: 0, headroom: 1, css: 2, overridden: 3, seed: 4, seconds: 5, repro: 6, label: 7, checks: 8};
  const K = {check: 0, status: 1, abs: 2, rel: 3, headroom: 4, tolerance: 5, comparisons: 6, examples: 7,
    rejected: 8, example: 9, seed: 10, what: 11, inputs: 12, kwargs: 13, message: 14};
  const text = (k, field) => S[k[field] || 0]; // trailing empty strings are left off the arrays
  const DEFAULTS = {q: "", status: "all", overridden: "", hmin: "", kind: "", dtype: "", device: "",
    sort: "status", open: ""};

  const table = document.querySelector("table.matrix");
  const columns = Array.from(table.tHead.rows[0].cells).slice(FIXED).map((th) => th.dataset.col);
  const colStyle = document.getElementById("column-filter");
  const rows = Array.from(table.tBodies[0].rows).map((tr) => {
    const entry = tr.cells[0].textContent, kind = tr.cells[1].textContent;
    const cases = columns.map((col, k) => {
      const id = entry + "|" + col.split("/").join("|");
      const c = D.cases[id];
      if (c) { tr.cells[FIXED + k].dataset.case = id; tr.cells[FIXED + k].tabIndex = 0; } // Tab reaches it, Enter opens it
      return c || null;
    });
    return {tr, entry, kind, cases, status: -1, worst: -1};
  });

  // ---- the hash ---------------------------------------------------------------------------------------
  function readState() {
    const p = new URLSearchParams(location.hash.slice(1));
    const st = {};
    for (const k in DEFAULTS) st[k] = p.get(k) ?? DEFAULTS[k];
    return st;
  }
  function hashOf(st) {
    const p = new URLSearchParams();
    for (const k in DEFAULTS) if (st[k] !== "" && st[k] !== DEFAULTS[k]) p.set(k, st[k]);
    return "#" + p.toString().replace(/%7C/gi, "|").replace(/%2C/gi, ","); // readable: case ids keep their bars
  }
  // Opening a case adds a history entry (Back closes it); typing in a filter replaces the current one.
  function setState(change, push) {
    const hash = hashOf(Object.assign(readState(), change));
    if (hash === location.hash || (hash === "#" && !location.hash)) return;
    if (push) location.hash = hash; else location.replace(hash);
  }

  // ---- numbers ----------------------------------------------------------------------------------------
  function fmt(x) {
    if (x === null || x === undefined) return "-";
    if (x === Infinity) return "∞ (fails)";
    if (x === 0) return "0";
    const a = Math.abs(x);
    return a < 1e-2 || a >= 1e4 ? x.toExponential(2) : String(Number(x.toPrecision(3)));
  }
  // A failing case whose failure is no measured ratio (an exception: headroom 0; a non-finite result: none)
  // sorts and filters as the worst there is: above any "headroom ≥" threshold.
  function caseHeadroom(c) {
    const h = c[C.headroom] ?? 0;
    return c[C.status] > 0 && h <= 1 ? Infinity : h;
  }
  function tolText(x) { return x !== 0 && Math.abs(x) < 1e-3 ? x.toExponential() : String(x); } // 1e-6, not 0.000001
  function entryOf(id) { return id.split("|").slice(0, -2).join("|"); }

  // ---- the matrix -------------------------------------------------------------------------------------
  function matcher(q) {
    if (!q) return () => true;
    try {
      const re = new RegExp(q, "i");
      note("");
      return (e) => re.test(e);
    } catch (err) {
      note("not a regular expression: matching it as text");
      const low = q.toLowerCase();
      return (e) => e.toLowerCase().includes(low);
    }
  }
  function note(text) { document.getElementById("q-note").textContent = text; }
  function listed(value, item) { return !value || value.split(",").includes(item); }

  function compareRows(sort) {
    const desc = sort.startsWith("-"), name = desc ? sort.slice(1) : sort;
    const key = {entry: () => 0, kind: (r) => r.kind, status: (r) => -r.status, headroom: (r) => -r.worst}[name] || (() => 0);
    return (a, b) => {
      const x = key(a), y = key(b);
      let c = x < y ? -1 : x > y ? 1 : 0;
      if (!c) c = a.entry < b.entry ? -1 : a.entry > b.entry ? 1 : 0;
      return desc ? -c : c;
    };
  }

  function renderMatrix(st) {
    const showCol = columns.map((col) => listed(st.dtype, col.split("/")[0]) && listed(st.device, col.split("/")[1]));
    colStyle.textContent = showCol.map((show, k) => show ? "" :
      `table.matrix tr > :nth-child(${FIXED + k + 1}) { display: none; }`).join("\n");
    const match = matcher(st.q), hmin = parseFloat(st.hmin);
    let shown = 0;
    for (const row of rows) {
      let status = -1, worst = -1, overridden = false;
      row.cases.forEach((c, k) => {
        if (!c || !showCol[k]) return;
        status = Math.max(status, c[C.status]);
        worst = Math.max(worst, caseHeadroom(c));
        overridden = overridden || c[C.overridden] === 1;
      });
      row.status = status;
      row.worst = worst;
      const visible = status >= 0 && match(row.entry) && (!st.kind || row.kind === st.kind)
        && (st.status !== "failing" || status > 0) && (st.status !== "passing" || status === 0)
        && (st.overridden !== "1" || overridden) && (isNaN(hmin) || worst >= hmin);
      row.tr.hidden = !visible;
      if (visible) shown++;
      const statusText = status < 0 ? "" : D.status[status];
      if (row.tr.cells[2].textContent !== statusText) {
        row.tr.cells[2].textContent = statusText;
        row.tr.cells[2].className = "status-" + statusText;
      }
      row.tr.cells[3].textContent = worst < 0 ? "" : fmt(worst);
    }
    const body = table.tBodies[0], order = rows.slice().sort(compareRows(st.sort));
    if (order.some((row, k) => body.rows[k] !== row.tr)) { // moving ~1000 rows costs a layout: only when it changed
      const moved = document.createDocumentFragment();
      order.forEach((row) => moved.appendChild(row.tr));
      body.appendChild(moved);
    }
    for (const th of table.tHead.rows[0].cells) {
      if (!th.dataset.sort) continue;
      const on = st.sort.replace(/^-/, "") === th.dataset.sort;
      th.classList.toggle("sorted", on);
      th.classList.toggle("desc", on && st.sort.startsWith("-"));
    }
    document.getElementById("count").textContent = `${shown} of ${rows.length} rows`;
  }

  function syncControls(st) {
    const form = document.getElementById("filters").elements;
    if (form.q.value !== st.q) form.q.value = st.q;
    form.status.value = st.status;
    form.overridden.checked = st.overridden === "1";
    if (form.hmin.value !== st.hmin) form.hmin.value = st.hmin;
    form.kind.value = st.kind;
    for (const box of document.querySelectorAll("#filters input[name=dtype], #filters input[name=device]")) {
      box.checked = listed(st[box.name], box.value);
    }
  }
  function readControls() {
    const form = document.getElementById("filters").elements;
    const ticked = (name) => {
      const boxes = Array.from(document.querySelectorAll(`#filters input[name=${name}]`));
      const on = boxes.filter((b) => b.checked).map((b) => b.value);
      return on.length === boxes.length ? "" : on.length ? on.join(",") : "none";
    };
    return {q: form.q.value, status: form.status.value, overridden: form.overridden.checked ? "1" : "",
      hmin: form.hmin.value, kind: form.kind.value, dtype: ticked("dtype"), device: ticked("device")};
  }

  // ---- the drill-down ---------------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const k in attrs || {}) node.setAttribute(k, attrs[k]);
    for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
    return node;
  }
  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const k in attrs) node.setAttribute(k, attrs[k]);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function checksTable(checks) {
    const head = ["check", "status", "compared (worst)", "max abs / rel error", "headroom", "tolerance and its rule",
      "comparisons · examples (rejected)", "worst example: inputs, kwargs"];
    const t = el("table", {class: "checks"}, el("tr", {}, ...head.map((h) => el("th", {}, h))));
    for (const k of checks) {
      const status = D.status[k[K.status]];
      const [rtol, atol, rule] = D.tolerances[k[K.tolerance]];
      const example = k[K.example] === null || k[K.example] === undefined ? "-" : `#${k[K.example]} seed ${k[K.seed]}`;
      t.append(el("tr", {},
        el("td", {}, text(k, K.check)), el("td", {class: "status-" + status}, status), el("td", {}, text(k, K.what)),
        el("td", {}, `${fmt(k[K.abs])} / ${fmt(k[K.rel])}`), el("td", {}, fmt(k[K.headroom])),
        el("td", {}, rtol === null ? "-" : `rtol ${tolText(rtol)}, atol ${tolText(atol)}`, el("br"), el("code", {}, S[rule] || "")),
        el("td", {}, `${k[K.comparisons] ?? ""} · ${k[K.examples] ?? ""} (${k[K.rejected] ?? 0})`),
        el("td", {}, example, el("br"), el("code", {}, text(k, K.inputs)),
          text(k, K.kwargs) ? el("code", {class: "kwargs"}, " · " + text(k, K.kwargs)) : "")));
    }
    return t;
  }

  function copyable(text) {
    const input = el("input", {readonly: "", value: text, "aria-label": "repro command"});
    const button = el("button", {type: "button"}, "copy");
    button.addEventListener("click", () => {
      input.select();
      const done = () => { button.textContent = "copied"; };
      const fallback = () => { document.execCommand("copy"); done(); }; // file:// pages may lack the clipboard API
      if (navigator.clipboard) navigator.clipboard.writeText(text).then(done, fallback); else fallback();
    });
    return el("div", {class: "repro"}, input, " ", button);
  }

  function rerunBlock(r) {
    const part = (x) => `seed ${x.seed}: ${x.status}` + (x.checks && x.checks.length ? ` (${x.checks.join(", ")})` : "");
    const verdict = String(r.verdict), said = String(r.text || ""); // the text may open with the verdict itself
    const rest = said.startsWith(verdict) ? said.slice(verdict.length).replace(/^[:\s]+/, "") : said;
    return el("div", {class: "verdict " + verdict.replace(/ /g, "-")},
      el("b", {}, verdict), ": ", rest,
      el("div", {class: "meta"}, "same seed: " + (r.same_seed ? part(r.same_seed) : "-") + " · fresh seeds: "
        + ((r.fresh || []).map(part).join("; ") || "-")));
  }

  // A message's first lines; the rest (a classifier's torch-only script, a long traceback) folded away.
  function messageBlock(check, message) {
    const lines = message.split("\n");
    const block = el("div", {class: "msg"}, el("b", {}, check + ": "), lines.slice(0, 4).join("\n"));
    if (lines.length > 4) {
      block.append(el("details", {}, el("summary", {}, `${lines.length - 4} more lines`), lines.slice(4).join("\n")));
    }
    return block;
  }

  function snippetBlock(s) {
    if (!s.snippet) return el("div", {class: "msg"}, s.error || "no script");
    const what = s.shrunk ? `shrunk to ${s.elements} tensor elements` + (s.capped ? ` (capped at ${s.seconds} s)` : "")
      : `example ${s.example}`;
    return el("details", {open: ""}, el("summary", {}, `minimal repro (${s.check}): standalone script, ${what}`),
      el("pre", {}, s.snippet));
  }

  // A log-scale chart of one entry's worst headroom per recorded run; the dashed line is 1 (above fails).
  function trendChart(points, width, height, small) {
    const left = small ? 2 : 44, right = small ? 2 : 10, top = small ? 3 : 8, bottom = small ? 3 : 18;
    const values = points.map((p) => p[1]).filter((h) => h !== null && h > 0);
    let lo = values.length ? Math.floor(Math.log10(Math.min(...values))) : -3;
    const hi = Math.max(0, values.length ? Math.ceil(Math.log10(Math.max(...values))) : 0);
    lo = Math.max(Math.min(lo, hi - 1), -16);
    const x = (i) => points.length < 2 ? (left + width - right) / 2 : left + i * (width - left - right) / (points.length - 1);
    const y = (h) => top + (hi - Math.log10(Math.max(h, 10 ** lo))) * (height - top - bottom) / (hi - lo);
    const chart = svg("svg", {class: "trend", width, height, role: "img",
      "aria-label": `headroom trend over ${points.length} runs`});
    if (!small) {
      const step = Math.max(1, Math.ceil((hi - lo) / 6));
      for (let d = hi; d >= lo; d -= step) {
        chart.append(svg("line", {class: "grid", x1: left, x2: width - right, y1: y(10 ** d), y2: y(10 ** d)}));
        chart.append(svg("text", {x: 2, y: y(10 ** d) + 3}, d === 0 ? "1" : `1e${d}`));
      }
      chart.append(svg("line", {class: "axis", x1: left, x2: left, y1: top, y2: height - bottom}));
    }
    chart.append(svg("line", {class: "limit", x1: left, x2: width - right, y1: y(1), y2: y(1)}));
    const finite = points.map((p, i) => [i, p[1], p[2]]).filter((p) => p[1] !== null && !(p[2] > 0 && p[1] <= 1));
    chart.append(svg("polyline", {points: finite.map(([i, h]) => `${x(i).toFixed(1)},${y(h).toFixed(1)}`).join(" ")}));
    points.forEach(([run, h, status], i) => {
      const info = D.runs[run] || [];
      const atTop = h === null || (status > 0 && h <= 1); // no ratio measured (non-finite, or an error): drawn on top
      const cls = atTop || status > 0 ? "nonfinite" : h === 0 ? "exact" : "";
      const dot = svg("circle", {cx: x(i).toFixed(1), cy: (atTop ? top : y(h)).toFixed(1), r: small ? 1.8 : 3.5, class: cls});
      dot.append(svg("title", {}, `${String(info[0] || "?").slice(0, 10)} · ${info[1] || ""} · torch ${info[2] || "?"}`
        + ` · headroom ${h === null ? "none finite" : fmt(h)}` + (status > 0 ? ` · ${D.status[status]}` : "")));
      chart.append(dot);
    });
    if (!small && points.length) {
      const first = D.runs[points[0][0]] || [], last = D.runs[points[points.length - 1][0]] || [];
      chart.append(svg("text", {x: left, y: height - 4}, String(first[0] || "?").slice(0, 8)));
      chart.append(svg("text", {x: width - right, y: height - 4, "text-anchor": "end"}, String(last[0] || "?").slice(0, 8)));
    }
    return chart;
  }

  function trendBlock(entry) {
    const points = D.trends[entry];
    if (!points || !points.length) return el("p", {class: "meta no-history"}, "no history: this report was written without "
      + "--history, or the history has no run of this entry");
    return el("div", {}, trendChart(points, 520, 170, false),
      el("p", {class: "meta"}, `${points.length} recorded run(s), oldest first; the entry's worst headroom per run `
        + "(log scale; hollow: exact; red: failed or erred, on top when no ratio was measured); dashed: 1, above it a check fails"));
  }

  let openCell = null;
  function renderDrill(id) {
    const panel = document.getElementById("drill");
    if (openCell) openCell.classList.remove("open");
    openCell = null;
    panel.replaceChildren();
    panel.hidden = !id;
    if (!id) return;
    const close = el("button", {type: "button", class: "close", "data-close": ""}, "close ×");
    panel.append(close, el("h2", {}, el("code", {}, id)));
    const c = D.cases[id];
    if (!c) {
      panel.append(el("p", {class: "status-fail"}, `No case ${id} in this report.`));
      return;
    }
    const status = D.status[c[C.status]];
    panel.append(el("p", {class: "meta"}, el("b", {class: "status-" + status}, status),
      ` · seed ${c[C.seed]} · ${fmt(c[C.seconds])} s · worst headroom ${fmt(caseHeadroom(c))}`
      + (c[C.overridden] ? " · tolerance overridden" : "") + (S[c[C.label]] ? ` · ${S[c[C.label]]}` : "")));
    panel.append(el("h3", {}, "Repro"), copyable(S[c[C.repro]].split("\u0000").join(id)));
    if (D.reruns[id]) panel.append(el("h3", {}, "Rerun (flakiness)"), rerunBlock(D.reruns[id]));
    panel.append(el("h3", {}, "Checks"), checksTable(c[C.checks]));
    const messages = c[C.checks].filter((k) => text(k, K.message));
    if (messages.length) {
      panel.append(el("h3", {}, "Messages"));
      for (const k of messages) panel.append(messageBlock(text(k, K.check), text(k, K.message)));
    }
    if (D.snippets[id]) panel.append(el("h3", {}, "Snippet"), snippetBlock(D.snippets[id]));
    panel.append(el("h3", {}, `Headroom trend of ${entryOf(id)} (its worst case per run, over every dtype and device)`), trendBlock(entryOf(id)));
    const cell = table.querySelector(`td[data-case="${CSS.escape(id)}"]`);
    if (cell) { cell.classList.add("open"); openCell = cell; }
    panel.scrollTop = 0;
  }

  function renderDrift() {
    for (const cell of document.querySelectorAll("td.spark[data-entry]")) {
      const points = D.trends[cell.dataset.entry];
      if (points && points.length) cell.append(trendChart(points, 170, 34, true));
    }
  }

  // ---- wiring -----------------------------------------------------------------------------------------
  let lastOpen = null, lastView = null;
  function render() {
    const st = readState();
    const view = JSON.stringify(Object.assign({}, st, {open: ""}));
    if (view !== lastView) { // opening or closing a case leaves the matrix as it is
      lastView = view;
      syncControls(st);
      renderMatrix(st);
    }
    if (st.open !== lastOpen) { lastOpen = st.open; renderDrill(st.open); }
  }

  const form = document.getElementById("filters");
  form.addEventListener("input", () => setState(readControls(), false));
  form.addEventListener("change", () => setState(readControls(), false));
  form.addEventListener("submit", (ev) => ev.preventDefault());
  document.getElementById("f-reset").addEventListener("click", () => setState(Object.assign({}, DEFAULTS), true));
  table.tHead.addEventListener("click", (ev) => {
    const th = ev.target.closest("th[data-sort]");
    if (!th) return;
    const sort = readState().sort;
    setState({sort: sort === th.dataset.sort ? "-" + th.dataset.sort : th.dataset.sort}, false);
  });
  document.addEventListener("click", (ev) => { // matrix cells, worst-case and drift links open a case
    const target = ev.target.closest("[data-case], [data-close]");
    if (!target) return;
    ev.preventDefault();
    setState({open: target.hasAttribute("data-close") ? "" : target.dataset.case}, true);
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && readState().open) setState({open: ""}, true);
    const cell = (ev.key === "Enter" || ev.key === " ") && ev.target.closest && ev.target.closest("td[data-case]");
    if (cell) { ev.preventDefault(); setState({open: cell.dataset.case}, true); } // the keyboard's click on a cell
  });
  window.addEventListener("hashchange", render);
  renderDrift();
  render();
})();
