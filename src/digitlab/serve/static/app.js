// digitlab: draw a digit. The canvas is sent as a PNG (multipart field "file") to /predict,
// where the same preprocessing as `digitlab predict` crops it, fits it to MNIST's 20x20 box
// and centres it by mass; the page shows the answer and the 28x28 the model saw.
// The server renders the page in its language (--lang) and hands this script its messages
// and the run's class names in the JSON block #page-data.
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
  const clearBtn = document.getElementById("clear");

  // From the server, in its language: {lang, classes: the run's class names, messages}.
  const data = JSON.parse(document.getElementById("page-data").textContent);
  const text = data.messages;
  const classes = data.classes.map(String);
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

  // "{percent} sure" with {percent: "97.1%"} -> "97.1% sure" (the server's templates are
  // Python str.format ones with named fields; a translation may move them).
  function format(template, values) {
    return template.replace(/\{(\w+)\}/g,
      (whole, name) => (name in values ? String(values[name]) : whole));
  }

  function setStatus(message, warn) {
    statusEl.textContent = message;
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
    setStatus(text.draw);
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
        if (detail === text.no_digit_detail) { // a blank or too small drawing
          setStatus(text.no_digit, true);
        } else {
          setStatus(detail || format(text.server_answered, { status: response.status }), true);
        }
        return;
      }
      show(body);
      setStatus(text.keep_drawing);
    } catch (err) {
      if (err.name !== "AbortError" && mine === seq) {
        setStatus(text.unreachable, true);
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
    // The run's own class name: 7, ৭ or Sneaker, as the model's classes spell it.
    labelEl.textContent = typeof result.text === "string" ? result.text
      : typeof result.class_name === "string" ? result.class_name : String(result.label);
    labelEl.classList.remove("empty");
    // Below the server's --min-confidence the best guess stays, marked "not sure".
    const unsure = result.sure === false;
    labelEl.classList.toggle("unsure", unsure);
    confidenceEl.classList.toggle("unsure", unsure);
    const percent = `${(100 * result.confidence).toFixed(1)}%`;
    confidenceEl.textContent = format(unsure ? text.not_sure : text.sure, { percent });
    confidenceEl.title = typeof result.min_confidence === "number"
      ? format(text.threshold, { percent: `${(100 * result.min_confidence).toFixed(0)}%` })
      : "";
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

  buildBars(classes.length);
  clearAll();
})();
