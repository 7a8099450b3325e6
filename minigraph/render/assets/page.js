// minigraph's interactive page: step through the passes, inspect any tensor, scrub through
// training.  Plain JavaScript, no library, no request: everything is in this file.
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("data").textContent);
  const svg = document.querySelector("#graph > svg");
  const $ = (id) => document.getElementById(id);
  const NF = D.forward.length, NB = D.backward.length;

  // ==== small helpers ==========================================================================
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v);
    }
    for (const k of kids.flat(Infinity)) if (k != null) e.append(k instanceof Node ? k : String(k));
    return e;
  }
  function fmt(x) {
    if (x === null || x === undefined) return "NaN";
    if (Number.isInteger(x) && Math.abs(x) < 1e6) return String(x);
    const a = Math.abs(x);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return x.toExponential(3).replace(/\.?0+e/, "e");
    return String(Number(x.toPrecision(4)));
  }
  function shapeText(shape) {
    return shape.length ? "(" + shape.join(", ") + ")" : "scalar";
  }

  // ==== which SVG element draws what ===========================================================
  const nodeEl = [], sourceEl = {}, sinkEl = {}, edgesOf = {}, clusterEl = {};
  const titleOf = (g) => { const t = g.querySelector("title"); return t ? t.textContent : ""; };
  const what = (id) => D.ids[id];
  const tensorOfEdge = (tail, head) => {
    for (const end of [tail, head]) { const w = what(end); if (w && w.tensor) return w.tensor; }
    const w = what(tail);
    return w && w.node !== undefined ? D.nodes[w.node].output : null;
  };
  svg.querySelectorAll("g.edge").forEach((g) => {
    const [tail, head] = titleOf(g).split("->");
    const t = tensorOfEdge(tail, head);
    if (t === null) return;
    g.dataset.tensor = t;
    (edgesOf[t] = edgesOf[t] || []).push(g);
    if (!what(head) && head.startsWith("o")) sinkEl[head] = t;
    const path = g.querySelector("path");
    if (path) {  // a wide invisible twin, so that thin edges are easy to hover
      const hit = path.cloneNode(false); hit.setAttribute("class", "hit");
      hit.removeAttribute("stroke-dasharray"); path.parentNode.append(hit);
    }
  });
  svg.querySelectorAll("g.node").forEach((g) => {
    const id = titleOf(g), w = what(id);
    if (w && w.node !== undefined) { nodeEl[w.node] = g; g.dataset.node = D.nodes[w.node].name; }
    else if (w && w.tensor) { sourceEl[w.tensor] = g; g.dataset.tensor = w.tensor; }
    else if (sinkEl[id]) { g.dataset.tensor = sinkEl[id]; }
  });
  svg.querySelectorAll("g.cluster").forEach((g) => {
    const group = D.clusters[titleOf(g)];
    if (group) { clusterEl[group] = g; g.dataset.group = group; }
  });
  // remember each drawn stroke, to restore it when a step's colours change
  svg.querySelectorAll("g.edge path, g.edge polygon").forEach((p) => {
    p.dataset.stroke = p.getAttribute("stroke") || "";
    p.dataset.fill = p.getAttribute("fill") || "";
    p.dataset.width = p.getAttribute("stroke-width") || "1";
    p.dataset.dash = p.getAttribute("stroke-dasharray") || "";
  });

  // ==== state ===================================================================================
  // pos: -1 overview (all computed); 0..NF-1 forward; NF..NF+NB-1 backward
  const S = { pos: -1, k: D.steps.length - 1, pinned: null };
  const step = () => D.steps[S.k];
  const entry = (t) => step().t[t] || {};
  const phase = () => (S.pos < 0 ? "overview" : S.pos < NF ? "forward" : "backward");

  function valueReady(t) {  // has t's value been computed at this position?
    if (S.pos < 0 || S.pos >= NF) return true;
    const p = D.tensors[t].producer;
    return p === null || D.forward.indexOf(p) <= S.pos;
  }
  function gradState(t) {  // "done", "pending" or "none"
    const done = D.gradDone[t];
    if (done === undefined || !entry(t).g) return "none";
    if (S.pos < 0) return "done";
    if (S.pos < NF) return "pending";
    return done <= S.pos - NF ? "done" : "pending";
  }
  function currentNode() {
    if (S.pos < 0) return null;
    return S.pos < NF ? D.forward[S.pos] : D.backward[S.pos - NF];
  }

  // ==== drawing the graph at the current position ===============================================
  function paintEdge(g, t) {
    const st = (entry(t).s) || { kind: "none" };
    const gs = gradState(t);
    const colored = gs === "done" && st.kind !== "none";
    g.querySelectorAll("path:not(.hit), polygon").forEach((p) => {
      const isPath = p.tagName === "path";
      p.setAttribute("stroke", colored ? st.color : p.dataset.stroke);
      if (!isPath && p.dataset.fill && p.dataset.fill !== "none")
        p.setAttribute("fill", colored ? st.color : p.dataset.fill);
      if (isPath) {
        p.setAttribute("stroke-width", colored ? st.width : p.dataset.width);
        const dash = colored && st.dash ? "5,2" : (colored ? "" : p.dataset.dash);
        if (dash) p.setAttribute("stroke-dasharray", dash); else p.removeAttribute("stroke-dasharray");
      }
    });
    g.classList.toggle("future", !valueReady(t));
    g.classList.toggle("gpending", gs === "pending" && phase() === "backward");
    g.dataset.grad = gs;
    g.dataset.kind = colored ? st.kind : "";
  }
  function paint() {
    const cur = currentNode();
    for (const [t, gs] of Object.entries(edgesOf)) gs.forEach((g) => {
      paintEdge(g, t);
      g.classList.remove("into", "outof");
    });
    nodeEl.forEach((g, i) => {
      if (!g) return;
      g.classList.toggle("current", i === cur);
      g.classList.toggle("future", S.pos >= 0 && S.pos < NF && D.forward.indexOf(i) > S.pos);
    });
    if (cur !== null) {
      const n = D.nodes[cur];
      const mark = (t, cls) => (edgesOf[t] || []).forEach((g) => {
        const [tail, head] = titleOf(g).split("->");
        const ends = [what(tail), what(head)];
        if (ends.some((w) => w && w.node === cur) || (cls === "outof" && t === n.output)) g.classList.add(cls);
      });
      const fwd = phase() === "forward";
      n.inputs.forEach((t) => mark(t, fwd ? "into" : "outof"));
      mark(n.output, fwd ? "outof" : "into");
    }
    const ph = $("phase");
    ph.className = phase();
    ph.textContent = S.pos < 0 ? (NB ? "overview: forward and backward done" : "overview: forward done")
      : S.pos < NF ? `forward ${S.pos + 1}/${NF}` : `backward ${S.pos - NF + 1}/${NB}`;
    drawStepPanel();
    if (S.pinned) showTensor(S.pinned); else if (!$("info").dataset.tensor) showHint();
    else showTensor($("info").dataset.tensor);
  }

  // ==== numbers as blocks =======================================================================
  function matrix(summary, which) {
    const v = summary.full, shape = summary.shape;
    const last = shape.length ? shape[shape.length - 1] : 1;
    const cols = shape.length <= 1 && last > 5 ? 5 : last;  // a long vector wraps, 5 a row
    const t = el("table", { class: "m " + which });
    for (let r = 0; r * cols < Math.max(v.length, 1); r++) {
      const tr = el("tr");
      for (let c = 0; c < cols && r * cols + c < v.length; c++) {
        const x = v[r * cols + c];
        tr.append(el("td", { class: x === null ? "nan" : "", "data-v": x === null ? "NaN" : String(x), text: fmt(x) }));
      }
      t.append(tr);
    }
    return t;
  }
  function histogram(h) {
    const W = 180, H = 40, NS = "http://www.w3.org/2000/svg";
    const s = document.createElementNS(NS, "svg");
    s.setAttribute("width", W); s.setAttribute("height", H + 12);
    const top = Math.max(...h.counts, 1), bw = W / h.counts.length;
    h.counts.forEach((c, i) => {
      const r = document.createElementNS(NS, "rect");
      const bh = c ? Math.max(1, (H * c) / top) : 0;
      r.setAttribute("x", i * bw); r.setAttribute("width", Math.max(bw - 1, 1));
      r.setAttribute("y", H - bh); r.setAttribute("height", bh); r.setAttribute("fill", "#6f9bd8");
      s.append(r);
    });
    for (const [x, text, anchor] of [[0, fmt(h.lo), "start"], [W, fmt(h.hi), "end"]]) {
      const tx = document.createElementNS(NS, "text");
      tx.setAttribute("x", x); tx.setAttribute("y", H + 11); tx.setAttribute("font-size", "10");
      tx.setAttribute("text-anchor", anchor); tx.textContent = text; s.append(tx);
    }
    return s;
  }
  function colour(q, diverging) {  // q in 0..255
    if (diverging) {
      const t = (q - 127.5) / 127.5;
      return t < 0 ? [255 + t * 222, 255 + t * 176, 255 + t * 75] : [255 - t * 41, 255 - t * 216, 255 - t * 215];
    }
    return [255 - q * 0.8, 255 - q * 0.6, 255 - q * 0.2];
  }
  function heatMaps(m) {
    const bytes = Uint8Array.from(atob(m.b64), (c) => c.charCodeAt(0));
    const box = el("div", { class: "maps" }), size = m.h * m.w;
    const zoom = Math.max(1, Math.min(6, Math.floor(48 / Math.max(m.h, m.w))));
    for (let k = 0; k < m.k; k++) {
      const cv = el("canvas", { width: m.w, height: m.h, title: `map ${k}` });
      cv.style.width = m.w * zoom + "px"; cv.style.height = m.h * zoom + "px";
      const ctx = cv.getContext("2d"), img = ctx.createImageData(m.w, m.h);
      for (let i = 0; i < size; i++) {
        const [r, g, b] = colour(bytes[k * size + i], m.lo < 0);
        img.data.set([r, g, b, 255], 4 * i);
      }
      ctx.putImageData(img, 0, 0);
      box.append(cv);
    }
    return el("div", {}, el("div", { class: "hint", text: `${m.k} heat map${m.k > 1 ? "s" : ""} (${fmt(m.lo)} … ${fmt(m.hi)})` }), box);
  }
  function block(summary, which) {
    if (!summary) return el("span", { class: "notyet", text: "—" });
    if (summary.full) return matrix(summary, which);
    const rows = [["min", summary.min], ["max", summary.max], ["mean", summary.mean],
      ["std", summary.std], ["norm", summary.norm]];
    const t = el("table", { class: "stats " + which });
    for (let i = 0; i < rows.length; i += 3)
      t.append(el("tr", {}, rows.slice(i, i + 3).map(([k, v]) => [el("td", { text: k }), el("td", { "data-stat": k, "data-v": String(v), text: fmt(v) })])));
    const out = el("div", {}, t);
    if (summary.nonfinite) out.append(el("div", { class: "tag-nan", text: `${summary.nonfinite} NaN or inf` }));
    if (summary.hist) out.append(histogram(summary.hist));
    if (summary.maps) out.append(heatMaps(summary.maps));
    return out;
  }

  // ==== the rule of the current node, in symbols and in numbers =================================
  const TOKEN = /\{([^}]+)\}/g;
  function fill(template, n, mode, self) {
    // mode "sym": tensor names; "num": small tensors' numbers (null when one is too large)
    const parts = [];
    let last = 0, ok = true;
    for (const m of template.matchAll(TOKEN)) {
      parts.push(template.slice(last, m.index));
      last = m.index + m[0].length;
      let tok = m[1], grad = false;
      if (tok.startsWith("∂")) { grad = true; tok = tok.slice(1); }
      if (tok.startsWith("@")) { parts.push(String(n.attrs[tok.slice(1)])); continue; }
      let shape = false;
      if (tok.endsWith(".shape")) { shape = true; tok = tok.slice(0, -6); }
      let t = tok === "out" ? n.output : tok === "self" ? self : n.bind[tok];
      if (Array.isArray(t)) { parts.push(t.join(", ")); continue; }
      if (t === undefined) { parts.push("0"); continue; }
      const e = entry(t);
      if (shape) { parts.push(shapeText((e.v || {}).shape || [])); continue; }
      if (mode === "sym") {
        parts.push(el("span", { class: "sym" + (grad ? " grad" : ""), "data-tensor": t, text: grad ? `∂${D.loss}/∂${t}` : t }));
      } else {
        const s = grad ? e.g : e.v;
        if (!s || !s.full) { ok = false; break; }
        parts.push(matrix(s, grad ? "g" : "v"));
      }
    }
    parts.push(template.slice(last));
    return ok ? parts : null;
  }
  function formula(lhs, template, n, self, result) {
    const box = el("div");
    box.append(el("div", { class: "formula" }, lhs, fill(template, n, "sym", self)));
    const nums = fill(template, n, "num", self);
    if (!lhs) {  // a forward rule: its template starts with the output itself
      box.append(el("div", { class: "formula numbers" }, nums || (result && result.full ? ["=", matrix(result, "r")]
        : el("span", { class: "hint", text: "(too large to write out: hover a tensor for its statistics and heat maps)" }))));
    } else if (nums && result && result.full) {
      box.append(el("div", { class: "formula numbers" }, "=", nums, "=", matrix(result, "r")));
    } else if (result && result.full) {
      box.append(el("div", { class: "formula numbers" }, "=", matrix(result, "r")));
    } else if (!nums) {
      box.append(el("div", { class: "hint", text: "(too large to write out: hover a tensor for its statistics and heat maps)" }));
    }
    return box;
  }
  function drawStepPanel() {
    const box = $("step"), cur = currentNode();
    box.replaceChildren();
    if (cur === null) {
      box.append(el("h3", { text: D.title }),
        el("p", { class: "hint", text: `Press → (or Next) to walk the forward pass node by node, then the backward pass. ${D.note || ""}` }));
      if (D.steps.length > 1) box.append(el("p", { class: "hint", text: "Move the slider below to see another recorded training step." }));
      return;
    }
    const n = D.nodes[cur], fwd = phase() === "forward";
    box.dataset.node = n.name;
    box.append(el("h3", {}, `${n.name} `, el("span", { class: "kind", text: n.op })),
      el("div", { class: "words", text: n.rule.words }));
    if (fwd) {
      box.append(el("h4", { text: "forward: the value it produces" }),
        formula("", n.rule.forward, n, null, entry(n.output).v));
      return;
    }
    box.append(el("h4", { text: `backward: receives ∂${D.loss}/∂${n.output}, sends to its inputs` }));
    const received = entry(n.output).g;
    box.append(el("div", { class: "formula" }, el("span", { class: "sym grad", "data-tensor": n.output, text: `∂${D.loss}/∂${n.output}` }), "=",
      received && received.full ? matrix(received, "g") : el("span", { class: "hint", text: received ? "(hover the edge)" : "—" })));
    const seen = new Set();
    for (const [declared, t] of Object.entries(n.bind)) {
      for (const tt of Array.isArray(t) ? t : [t]) {
        if (seen.has(tt)) continue; seen.add(tt);
        const expr = n.rule.backward[declared];
        if (expr === undefined || D.gradDone[tt] === undefined) {
          box.append(el("div", { class: "formula pending", text: `${tt}: no gradient (${expr === undefined ? "not differentiable" : "the loss does not need it"})` }));
          continue;
        }
        const readers = D.tensors[tt].readers.length;
        box.append(formula(el("span", { class: "sym grad", "data-tensor": tt, text: `∂${D.loss}/∂${tt} ${readers > 1 ? "+=" : "="}` }), expr, n, tt,
          gradState(tt) === "done" ? entry(tt).g : null));
        if (readers > 1) box.append(el("div", { class: "hint", text: `${tt} is read by ${readers} nodes: its gradient is the sum of their shares` }));
      }
    }
  }

  // ==== the inspector ===========================================================================
  function showHint() {
    const box = $("info");
    box.dataset.tensor = "";
    box.replaceChildren(el("p", { class: "hint", text: "Hover or click an edge (a tensor) or a node." }));
  }
  function showTensor(t) {
    const box = $("info"), info = D.tensors[t], e = entry(t);
    box.dataset.tensor = t;
    box.replaceChildren();
    const shape = (e.v && e.v.shape) || [];
    box.append(el("h3", {}, t, " ", el("span", { class: "kind", text: info.kind })),
      el("div", { text: `shape ${shapeText(shape)}, ${info.dtype}` }));
    if (info.producer !== null) box.append(el("div", { class: "hint", text: `made by ${D.nodes[info.producer].name} (${D.nodes[info.producer].op})` }));
    if (info.readers.length) box.append(el("div", { class: "hint", text: "read by " + info.readers.map((i) => D.nodes[i].name).join(", ") }));
    box.append(el("h4", { text: "value" }));
    box.append(valueReady(t) ? el("div", { class: "value" }, block(e.v, "v"))
      : el("div", { class: "notyet value", text: "not computed yet (the forward pass has not reached it)" }));
    box.append(el("h4", { text: `gradient ∂${D.loss}/∂${t}` }));
    const gs = gradState(t);
    if (gs === "none") box.append(el("div", { class: "grad none", text: D.loss ? "no gradient: the loss does not depend on it through differentiable ops" : "no loss, so no gradient" }));
    else if (gs === "pending") box.append(el("div", { class: "notyet grad", text: "not computed yet: the backward pass has not reached it" }));
    else {
      const kind = (e.s || {}).kind;
      if (kind && kind !== "normal") box.append(el("div", { class: "tag-" + kind, text: kind === "nan" ? "NaN or inf" : kind }));
      box.append(el("div", { class: "grad" }, block(e.g, "g")));
    }
    const slots = (step().o || {})[t];
    if (slots) for (const [slot, s] of Object.entries(slots)) {
      box.append(el("h4", { text: `optimizer state ${slot}` }), el("div", { class: "optim", "data-slot": slot }, block(s, "o")));
    }
  }
  function showNode(i) {
    showTensor(D.nodes[i].output);
    const box = $("info");
    box.prepend(el("div", { class: "hint" }, `node ${D.nodes[i].name} (${D.nodes[i].op}): ${D.nodes[i].rule.words}. Its output:`));
  }

  // ==== moving ===================================================================================
  function go(pos) {
    S.pos = Math.max(-1, Math.min(NF + NB - 1, pos));
    paint();
  }
  $("next").onclick = () => go(S.pos + 1);
  $("back").onclick = () => go(S.pos - 1);
  $("overview").onclick = () => go(-1);
  document.addEventListener("keydown", (ev) => {
    if (ev.target && ev.target.tagName === "INPUT") return;  // the search box, the slider
    if (ev.key === "ArrowRight") { go(S.pos + 1); ev.preventDefault(); }
    else if (ev.key === "ArrowLeft") { go(S.pos - 1); ev.preventDefault(); }
    else if (ev.key === "Home") go(-1);
    else if (ev.key === "Escape") { S.pinned = null; showHint(); }
    else if (ev.key === "/") { $("search").focus(); ev.preventDefault(); }
  });
  function targetOf(ev) {
    const g = ev.target.closest && ev.target.closest("g.edge, g.node");
    if (!g) return null;
    if (g.dataset.node) return { node: D.nodes.findIndex((n) => n.name === g.dataset.node), g };
    if (g.dataset.tensor) return { tensor: g.dataset.tensor, g };
    return null;
  }
  svg.addEventListener("mouseover", (ev) => {
    const t = targetOf(ev);
    svg.querySelectorAll("g.hover").forEach((g) => g.classList.remove("hover"));
    if (!t) return;
    t.g.classList.add("hover");
    if (S.pinned) return;
    if (t.tensor) showTensor(t.tensor); else showNode(t.node);
  });
  svg.addEventListener("click", (ev) => {
    if (moved) return;
    const t = targetOf(ev);
    const title = ev.target.closest && ev.target.closest("g.node");
    if (title && /^t\d+$/.test(titleOf(title))) {  // a top-to-bottom drawing's layer title
      toggleCluster(D.clusters["cluster_" + titleOf(title).slice(1)]);
      return;
    }
    if (!t) {
      const c = ev.target.closest && ev.target.closest("g.cluster");
      if (c) toggleCluster(c.dataset.group);
      return;
    }
    S.pinned = t.tensor || D.nodes[t.node].output;
    if (t.tensor) showTensor(t.tensor); else showNode(t.node);
  });
  $("side").addEventListener("mouseover", (ev) => {
    const s = ev.target.closest && ev.target.closest(".sym");
    if (s && !S.pinned) showTensor(s.dataset.tensor);
  });

  // ==== pan, zoom, find, collapse ================================================================
  const base = svg.viewBox.baseVal;
  const home = { x: base.x, y: base.y, w: base.width, h: base.height };
  let view = Object.assign({}, home), moved = false;
  svg.removeAttribute("width"); svg.removeAttribute("height");
  svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
  function setView(v) { view = v; svg.setAttribute("viewBox", `${v.x} ${v.y} ${v.w} ${v.h}`); }
  function zoom(f, cx, cy) {
    cx = cx === undefined ? view.x + view.w / 2 : cx; cy = cy === undefined ? view.y + view.h / 2 : cy;
    setView({ x: cx - (cx - view.x) * f, y: cy - (cy - view.y) * f, w: view.w * f, h: view.h * f });
  }
  function svgPoint(ev) {
    const p = svg.createSVGPoint(); p.x = ev.clientX; p.y = ev.clientY;
    return p.matrixTransform(svg.getScreenCTM().inverse());
  }
  svg.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const p = svgPoint(ev);
    zoom(ev.deltaY > 0 ? 1.15 : 1 / 1.15, p.x, p.y);
  }, { passive: false });
  let drag = null;
  svg.addEventListener("mousedown", (ev) => { drag = { x: ev.clientX, y: ev.clientY, v: Object.assign({}, view) }; moved = false; });
  window.addEventListener("mousemove", (ev) => {
    if (!drag) return;
    const r = svg.getBoundingClientRect(), s = Math.max(drag.v.w / r.width, drag.v.h / r.height);
    const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) { moved = true; $("graph").classList.add("dragging"); }
    if (moved) setView({ x: drag.v.x - dx * s, y: drag.v.y - dy * s, w: drag.v.w, h: drag.v.h });
  });
  window.addEventListener("mouseup", () => { drag = null; $("graph").classList.remove("dragging"); setTimeout(() => { moved = false; }, 0); });
  $("zin").onclick = () => zoom(1 / 1.3);
  $("zout").onclick = () => zoom(1.3);
  $("zfit").onclick = () => setView(Object.assign({}, home));
  function find(name) {
    svg.querySelectorAll(".found").forEach((g) => g.classList.remove("found"));
    if (!D.tensors[name]) return false;
    const gs = (edgesOf[name] || []).concat(sourceEl[name] ? [sourceEl[name]] : []);
    gs.forEach((g) => g.classList.add("found"));
    S.pinned = name; showTensor(name);
    if (gs.length) {
      const b = gs[0].getBBox(), m = gs[0].getCTM(), root = svg.getCTM();
      const p = svg.createSVGPoint(); p.x = b.x + b.width / 2; p.y = b.y + b.height / 2;
      const c = p.matrixTransform(root.inverse().multiply(m));
      const w = Math.min(view.w, home.w / 2), h = Math.min(view.h, home.h / 2);
      setView({ x: c.x - w / 2, y: c.y - h / 2, w, h });
    }
    return true;
  }
  const names = $("names");
  Object.keys(D.tensors).forEach((t) => names.append(el("option", { value: t })));
  $("search").addEventListener("keydown", (ev) => {
    if (ev.key !== "Enter") return;
    const q = ev.target.value.trim(), all = Object.keys(D.tensors);
    const hit = all.find((t) => t === q) || all.find((t) => t.toLowerCase().includes(q.toLowerCase()));
    ev.target.classList.toggle("miss", !(hit && find(hit)));
  });
  function toggleCluster(group) {
    const c = clusterEl[group];
    if (!c) return;
    const hide = !c.classList.contains("collapsed");
    c.classList.toggle("collapsed", hide);
    const inside = new Set();
    D.nodes.forEach((n, i) => { if (n.group === group && nodeEl[i]) inside.add(nodeEl[i]); });
    Object.entries(D.tensors).forEach(([t, info]) => { if (info.home === group && sourceEl[t]) inside.add(sourceEl[t]); });
    inside.forEach((g) => g.classList.toggle("hidden-by-cluster", hide));
    const ids = new Set([...inside].map(titleOf));
    for (const gs of Object.values(edgesOf)) gs.forEach((g) => {
      const [a, b] = titleOf(g).split("->");
      if (ids.has(a) && ids.has(b)) g.classList.toggle("hidden-by-cluster", hide);
    });
    const label = c.querySelector("text");
    if (label) label.textContent = (hide ? "⊞ " : "") + label.textContent.replace(/^⊞ /, "");
  }

  // ==== the legend and the training slider =======================================================
  const lg = $("legend");
  lg.append("∂" + (D.loss || "L") + " by size: ");
  D.scale.stops.forEach(([v, c]) => { const i = el("i", { text: fmt(v) }); i.style.background = c; lg.append(i); });
  lg.append(el("span", { text: " dashed grey: tiny", style: `color:${D.scale.vanishingColor}` }),
    el("span", { text: " · red: large", style: `color:${D.scale.explodingColor}` }),
    el("span", { text: " · magenta: NaN", style: `color:${D.scale.nan}` }));
  function curveChart() {
    const c = $("curve"), NS = "http://www.w3.org/2000/svg";
    c.replaceChildren();
    const recs = D.curve;
    if (!recs.length) return;
    const W = c.clientWidth || 600, H = 70, pad = 4;
    const keys = Object.keys(recs[0]).filter((k) => !["epoch", "lr", "seconds"].includes(k) && typeof recs[0][k] === "number");
    const e0 = recs[0].epoch - 1, e1 = recs[recs.length - 1].epoch;
    const X = (e) => pad + ((W - 2 * pad) * (e - e0)) / Math.max(e1 - e0, 1);
    const palette = ["#1f4fbf", "#d62728", "#2b8a3e", "#8a3ab9", "#ff8c00", "#555"];
    keys.forEach((k, j) => {
      const vals = recs.map((r) => r[k]).filter((v) => typeof v === "number" && isFinite(v));
      if (!vals.length) return;
      const lo = Math.min(...vals), hi = Math.max(...vals), span = hi - lo || 1;
      const pts = recs.filter((r) => isFinite(r[k])).map((r) => `${X(r.epoch)},${H - pad - ((H - 2 * pad) * (r[k] - lo)) / span}`);
      const pl = document.createElementNS(NS, "polyline");
      pl.setAttribute("points", pts.join(" ")); pl.setAttribute("fill", "none");
      pl.setAttribute("stroke", palette[j % palette.length]); pl.setAttribute("stroke-width", "1.5");
      c.append(pl);
      const tx = document.createElementNS(NS, "text");
      tx.setAttribute("x", W - pad); tx.setAttribute("y", 12 + 11 * j); tx.setAttribute("text-anchor", "end");
      tx.setAttribute("font-size", "10"); tx.setAttribute("fill", palette[j % palette.length]);
      tx.textContent = k; c.append(tx);
    });
    const ep = step().epoch || 0, mk = document.createElementNS(NS, "line");
    mk.setAttribute("x1", X(ep)); mk.setAttribute("x2", X(ep)); mk.setAttribute("y1", 0); mk.setAttribute("y2", H);
    mk.setAttribute("stroke", "#ff8c00"); mk.setAttribute("stroke-width", "2"); mk.setAttribute("id", "marker");
    c.append(mk);
  }
  function stepLabel() {
    const s = step(), r = s.record || {};
    const parts = Object.entries(r).filter(([k, v]) => typeof v === "number" && !["epoch", "seconds", "lr"].includes(k)).map(([k, v]) => `${k} ${fmt(v)}`);
    $("steplabel").textContent = `${s.label}${parts.length ? ": " + parts.join(", ") : ""}`;
  }
  if (D.steps.length > 1) {
    const sl = $("slider");
    $("train").hidden = false;
    sl.max = String(D.steps.length - 1); sl.value = String(S.k);
    sl.addEventListener("input", () => { S.k = Number(sl.value); stepLabel(); curveChart(); paint(); });
    stepLabel();
    requestAnimationFrame(curveChart);
  }
  $("title").textContent = D.title;
  window.minigraphPage = { go, find, toggleCluster, state: () => ({ pos: S.pos, k: S.k, phase: phase() }) };
  paint();
})();
