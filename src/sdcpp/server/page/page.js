// The page's only script: it talks to this server's A1111 routes, nothing else.
"use strict";

const $ = (id) => document.getElementById(id);
let polling = null;
let imageUrl = null;

async function getJson(path, options) {
  const response = await fetch(path, options);
  const data = await response.json();
  if (!response.ok) {
    throw new Error(data.error?.message || data.error || `${response.status} ${response.statusText}`);
  }
  return data;
}

function showStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

async function pollProgress() {
  try {
    const p = await getJson("/sdapi/v1/progress");
    const s = p.state;
    if (!s.job) return;
    $("progress").value = p.progress;
    const left = p.eta_relative > 0 ? `, about ${Math.ceil(p.eta_relative)} s left` : "";
    const waiting = s.queued ? ` (${s.queued} waiting)` : "";
    const doing = s.sampling_steps ? `Step ${s.sampling_step}/${s.sampling_steps}${left}` : "Reading the prompt";
    showStatus(doing + waiting);
    if (p.current_image) {
      $("preview").src = `data:image/png;base64,${p.current_image}`;
      $("preview").hidden = false;
    }
  } catch (e) { /* the generate request reports errors */ }
}

function pngBlob(base64) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return new Blob([bytes], { type: "image/png" });  // the PNG as sdcpp wrote it, metadata and all
}

async function generate(event) {
  event.preventDefault();
  const body = {
    prompt: $("prompt").value,
    negative_prompt: $("negative_prompt").value,
    width: Number($("width").value),
    height: Number($("height").value),
    steps: Number($("steps").value),
    seed: Number($("seed").value),
  };
  $("generate").disabled = true;
  $("interrupt").disabled = false;
  $("progress").value = 0;
  showStatus("Queued…");
  polling = setInterval(pollProgress, 500);
  try {
    const data = await getJson("/sdapi/v1/txt2img", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const info = JSON.parse(data.info);
    if (data.images.length === 0) {
      showStatus("Interrupted.");
      return;
    }
    if (imageUrl) URL.revokeObjectURL(imageUrl);
    imageUrl = URL.createObjectURL(pngBlob(data.images[0]));
    $("result").src = imageUrl;
    $("download").href = imageUrl;
    $("download").download = `sdcpp-${info.all_seeds[0]}.png`;
    $("parameters").textContent = info.infotexts[0];
    $("output").hidden = false;
    $("progress").value = 1;
    showStatus(`Done: seed ${info.all_seeds[0]}.`);
  } catch (e) {
    showStatus(e.message, true);
  } finally {
    clearInterval(polling);
    $("preview").hidden = true;
    $("generate").disabled = false;
    $("interrupt").disabled = true;
  }
}

$("form").addEventListener("submit", generate);
$("interrupt").addEventListener("click", () => fetch("/sdapi/v1/interrupt", { method: "POST" }));
getJson("/sdapi/v1/sd-models").then((models) => { $("model").textContent = models[0].title; }).catch(() => {});
