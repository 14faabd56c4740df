// kshot serve's page (served as /static/page.js: the page's CSP allows no inline script)
"use strict";
const $ = (id) => document.getElementById(id);
const keyInput = $("key");
// The key lives only in this page's memory (the input field): never in localStorage or sessionStorage,
// where any script of this origin could read it later. An older version kept it in localStorage: drop it.
try { localStorage.removeItem("kshot-key"); } catch (e) { /* storage disabled */ }

function status(message, ok) {
  $("status").textContent = message;
  $("status").className = ok ? "ok" : "";
}

async function call(method, path, body) {
  const headers = {"Authorization": "Bearer " + keyInput.value.trim()};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
  let data = {};
  try { data = await response.json(); } catch (e) { /* not JSON */ }
  if (!response.ok) {
    const err = (data && data.error) || {};
    throw new Error((err.message || response.statusText) + (err.field ? " [" + err.field + "]" : ""));
  }
  return data;
}

async function loadLabels() {
  const data = await call("GET", "/v1/labels");
  const body = $("labels"), list = $("label-list");
  body.replaceChildren(); list.replaceChildren();
  for (const item of data.labels) {
    const tr = document.createElement("tr");
    for (const value of [item.label, item.examples]) {
      const td = document.createElement("td"); td.textContent = value; tr.appendChild(td);
    }
    tr.dataset.label = item.label;
    body.appendChild(tr);
    const option = document.createElement("option"); option.value = item.label; list.appendChild(option);
  }
}

async function classify() {
  const text = $("text").value;
  const data = await call("POST", "/v1/predict", {texts: [text], top_k: 5});
  const p = data.predictions[0];
  $("intent").textContent = p.label;
  $("score").textContent = p.score.toFixed(3);
  const body = $("scores");
  body.replaceChildren();
  for (const t of p.top) {
    const tr = document.createElement("tr");
    const name = document.createElement("td"); name.textContent = t.label;
    const score = document.createElement("td"); score.textContent = t.score.toFixed(3);
    const bar = document.createElement("td"); const span = document.createElement("span");
    span.className = "bar"; span.style.width = Math.round(t.score * 200) + "px"; bar.appendChild(span);
    tr.append(name, score, bar); body.appendChild(tr);
  }
  $("result").hidden = false;
  status("", true);
}

async function addExample() {
  const data = await call("POST", "/v1/examples", {text: $("text").value, label: $("label").value});
  status("added example " + data.ids[0] + " to '" + $("label").value.trim() + "'", true);
  await loadLabels();
}

function guard(fn) {
  return async () => { try { await fn(); } catch (e) { status(e.message, false); } };
}

$("save-key").addEventListener("click", guard(async () => {
  await loadLabels(); status("key in use on this page (not stored; a reload forgets it)", true);
}));
$("classify").addEventListener("click", guard(classify));
$("add").addEventListener("click", guard(addExample));
$("text").addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); guard(classify)(); } });
