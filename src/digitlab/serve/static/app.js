// digitlab: draw a digit. The canvas is sent as a PNG (multipart field "file") to /predict,
// where the same preprocessing as `digitlab predict` crops it, fits it to MNIST's 20x20 box
// and centres it by mass; the page shows the answer and the 28x28 the model saw.
"use strict";

(function () {
  const DEBOUNCE_MS = 150;
  const STROKE = 20; // px on the 280x280 pad: about 2 px at 28x28, like MNIST's pen

  const pad = document.getElementById("pad");
  const ctx = pad.getContext("2d");
  const preview = document.getElementById("preview");
  const previewCtx = preview.getContext("2d");
  const labelEl = document.getElementById("label");
  const confidenceEl = document.getElementById("confidence");
  const barsEl = document.getElementById("bars");
  const statusEl = document.getElementById("status");
  const modelEl = document.getElementById("model");
  const clearBtn = document.getElementById("clear");

  let classes = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
  let drawing = false;
  let dirty = false; // something has been drawn since the last clear
  let last = null;
  let timer = null;
  let seq = 0; // bumped by Clear
  let inflight = null;
  // One request at a time: a drawing that changes while one is in flight is sent as soon as
  // it returns, so a slow server sees the latest drawing, never a queue of stale ones.
  let busy = false;
  let again = false;

  function setStatus(text, warn) {
    statusEl.textContent = text;
    statusEl.classList.toggle("warn", Boolean(warn));
  }

  function buildBars(n) {
    barsEl.replaceChildren();
    for (let i = 0; i < n; i++) {
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.dataset.digit = classes[i] !== undefined ? classes[i] : String(i);
      bar.dataset.pct = "";
      bar.style.width = "0%";
      bar.title = bar.dataset.digit;
      barsEl.appendChild(bar);
    }
  }

  function resetPad() {
    ctx.globalCompositeOperation = "source-over";
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, pad.width, pad.height);
    ctx.strokeStyle = "#fff";
    ctx.fillStyle = "#fff";
    ctx.lineWidth = STROKE;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
  }

  function resetResult() {
    labelEl.textContent = "?";
    labelEl.classList.add("empty");
    labelEl.classList.remove("unsure");
    confidenceEl.innerHTML = "&nbsp;";
    confidenceEl.classList.remove("unsure");
    confidenceEl.title = "";
    for (const bar of barsEl.children) {
      bar.style.width = "0%";
      bar.dataset.pct = "";
      bar.classList.remove("top");
    }
    previewCtx.fillStyle = "#000";
    previewCtx.fillRect(0, 0, preview.width, preview.height);
  }

  function clearAll() {
    seq++; // answers to requests sent before this are dropped
    again = false;
    if (inflight) inflight.abort();
    clearTimeout(timer);
    drawing = false;
    dirty = false;
    resetPad();
    resetResult();
    setStatus("Draw a digit in the black square.");
  }

  function point(ev) {
    const rect = pad.getBoundingClientRect();
    return {
      x: (ev.clientX - rect.left) * (pad.width / rect.width),
      y: (ev.clientY - rect.top) * (pad.height / rect.height),
    };
  }

  function dot(p) {
    ctx.beginPath();
    ctx.arc(p.x, p.y, STROKE / 2, 0, 2 * Math.PI);
    ctx.fill();
  }

  function line(a, b) {
    ctx.beginPath();
    ctx.moveTo(a.x, a.y);
    ctx.lineTo(b.x, b.y);
    ctx.stroke();
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(predict, DEBOUNCE_MS);
  }

  pad.addEventListener("pointerdown", (ev) => {
    if (ev.button !== 0 && ev.pointerType === "mouse") return;
    ev.preventDefault();
    pad.setPointerCapture(ev.pointerId);
    drawing = true;
    dirty = true;
    last = point(ev);
    dot(last);
    schedule();
  });

  pad.addEventListener("pointermove", (ev) => {
    if (!drawing) return;
    ev.preventDefault();
    const events = typeof ev.getCoalescedEvents === "function" ? ev.getCoalescedEvents() : [];
    for (const e of events.length ? events : [ev]) {
      const p = point(e);
      line(last, p);
      last = p;
    }
    schedule();
  });

  function stop(ev) {
    if (!drawing) return;
    drawing = false;
    if (pad.hasPointerCapture(ev.pointerId)) pad.releasePointerCapture(ev.pointerId);
    clearTimeout(timer);
    predict();
  }
  pad.addEventListener("pointerup", stop);
  pad.addEventListener("pointercancel", stop);
  pad.addEventListener("contextmenu", (ev) => ev.preventDefault());

  clearBtn.addEventListener("click", clearAll);
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") clearAll();
  });

  function toBlob() {
    return new Promise((resolve) => pad.toBlob(resolve, "image/png"));
  }

  async function predict() {
    if (!dirty) return;
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    again = false;
    const mine = seq;
    const controller = new AbortController();
    inflight = controller;
    try {
      const blob = await toBlob();
      if (mine !== seq || !blob) return;
      const form = new FormData();
      form.append("file", blob, "drawing.png");
      const response = await fetch("/predict", {
        method: "POST",
        body: form,
        signal: controller.signal,
      });
      const body = await response.json().catch(() => ({}));
      if (mine !== seq) return; // cleared meanwhile
      if (!response.ok) {
        resetResult();
        const detail = typeof body.detail === "string" ? body.detail : "";
        if (/no digit/i.test(detail)) {
          setStatus("No digit yet: draw a bigger stroke.", true);
        } else {
          setStatus(detail || `The server answered ${response.status}.`, true);
        }
        return;
      }
      show(body);
      setStatus("Keep drawing, or Clear to start again.");
    } catch (err) {
      if (err.name !== "AbortError" && mine === seq) {
        setStatus("Cannot reach the digitlab server.", true);
      }
    } finally {
      if (inflight === controller) inflight = null;
      busy = false;
      if (again && dirty) predict();
    }
  }

  function show(result) {
    const probs = result.probabilities || [];
    if (barsEl.children.length !== probs.length) buildBars(probs.length);
    let top = 0;
    probs.forEach((p, i) => { if (p > probs[top]) top = i; });
    labelEl.textContent = result.class_name !== undefined ? result.class_name
      : String(result.label);
    labelEl.classList.remove("empty");
    // Below the server's --min-confidence the best guess stays, marked "not sure".
    const unsure = result.sure === false;
    labelEl.classList.toggle("unsure", unsure);
    confidenceEl.classList.toggle("unsure", unsure);
    const pct = `${(100 * result.confidence).toFixed(1)}%`;
    confidenceEl.textContent = unsure ? `not sure: best guess at ${pct}` : `${pct} sure`;
    confidenceEl.title = typeof result.min_confidence === "number"
      ? `answers below ${(100 * result.min_confidence).toFixed(0)}% are marked not sure` : "";
    Array.from(barsEl.children).forEach((bar, i) => {
      const pct = 100 * probs[i];
      bar.style.width = `${pct.toFixed(1)}%`;
      bar.dataset.pct = `${pct.toFixed(1)}%`;
      bar.classList.toggle("top", i === top);
    });
    drawPreview(result.preprocessed);
  }

  function drawPreview(rows) {
    if (!Array.isArray(rows) || rows.length !== preview.height) return;
    const image = previewCtx.createImageData(preview.width, preview.height);
    for (let y = 0; y < preview.height; y++) {
      for (let x = 0; x < preview.width; x++) {
        const v = rows[y][x];
        const k = 4 * (y * preview.width + x);
        image.data[k] = image.data[k + 1] = image.data[k + 2] = v;
        image.data[k + 3] = 255;
      }
    }
    previewCtx.putImageData(image, 0, 0);
  }

  async function describeModel() {
    try {
      const response = await fetch("/model");
      if (!response.ok) return;
      const info = await response.json();
      if (Array.isArray(info.classes) && info.classes.length) {
        classes = info.classes.map(String);
        if (!dirty || barsEl.children.length !== classes.length) {
          buildBars(classes.length);
          resetResult();
        } else {
          Array.from(barsEl.children).forEach((bar, i) => { bar.dataset.digit = classes[i]; });
        }
      }
      const parts = [info.preset ? `${info.preset} preset` : "own config (no preset)",
                     `model ${info.model}`];
      if (info.dataset) parts.push(`trained on ${info.dataset}`);
      if (typeof info.test_accuracy === "number") {
        parts.push(`test accuracy ${(100 * info.test_accuracy).toFixed(2)}%`);
      }
      if (info.epoch) parts.push(`${info.epoch} epochs`);
      modelEl.textContent = parts.join(" \u00b7 ");
    } catch (err) {
      // the page works without it
    }
  }

  buildBars(classes.length);
  clearAll();
  describeModel();
})();
