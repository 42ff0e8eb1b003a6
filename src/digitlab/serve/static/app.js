// digitlab: draw a digit, or write a number. The square pad is sent as a PNG (multipart field
// "file") to /predict, where the same preprocessing as `digitlab predict` crops it, fits it to
// MNIST's 20x20 box and centres it by mass; the page shows the answer and the 28x28 the model
// saw. The wide number pad is sent to /read, which finds the digits in it as `digitlab read`
// does; the page shows the number, its confidence, and a frame round each digit found.
// The server renders the page in its language (--lang) and hands this script its messages,
// the run's class names and its task in the JSON block #page-data. A run trained with
// --task read reads whole numbers only: its page has no digit pad (the section is hidden).
"use strict";

(function () {
  const DEBOUNCE_MS = 150; // the digit pad is read this long after the pen last moved
  const READ_DELAY_MS = 400; // the number pad, this long after the pen lifts: a number takes
  // several strokes, and a stroke begun meanwhile puts the reading off again
  const STROKE = 20; // px on a pad 280 high: about 2 px at 28x28, like MNIST's pen
  const FRAME_COLOUR = "#f0a050"; // the frames round the digits read, over the number pad

  // From the server, in its language: {lang, classes, messages, task, method}.
  const data = JSON.parse(document.getElementById("page-data").textContent);
  const text = data.messages;
  const classes = data.classes.map(String);
  let active = null; // the pad drawn on last: Esc clears it

  // "{percent} sure" with {percent: "97.1%"} -> "97.1% sure" (the server's templates are
  // Python str.format ones with named fields; a translation may move them).
  function format(template, values) {
    return template.replace(/\{(\w+)\}/g,
      (whole, name) => (name in values ? String(values[name]) : whole));
  }

  function percent(p) {
    return `${(100 * p).toFixed(1)}%`;
  }

  function setStatus(element, message, warn) {
    element.textContent = message;
    element.classList.toggle("warn", Boolean(warn));
  }

  // A canvas drawn on in white on black with a mouse, a pen or a finger; on.down(), on.move()
  // and on.lift() follow the pen.
  function makePad(canvas, on) {
    const ctx = canvas.getContext("2d");
    const pad = { drawing: false, dirty: false }; // dirty: drawn on since the last reset
    let last = null;

    pad.reset = function () {
      pad.drawing = false;
      pad.dirty = false;
      ctx.globalCompositeOperation = "source-over";
      ctx.fillStyle = "#000";
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      ctx.strokeStyle = "#fff";
      ctx.fillStyle = "#fff";
      ctx.lineWidth = STROKE;
      ctx.lineCap = "round";
      ctx.lineJoin = "round";
    };

    pad.toBlob = () => new Promise((resolve) => canvas.toBlob(resolve, "image/png"));

    function point(ev) {
      const rect = canvas.getBoundingClientRect();
      return {
        x: (ev.clientX - rect.left) * (canvas.width / rect.width),
        y: (ev.clientY - rect.top) * (canvas.height / rect.height),
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

    canvas.addEventListener("pointerdown", (ev) => {
      if (ev.button !== 0 && ev.pointerType === "mouse") return;
      ev.preventDefault();
      canvas.setPointerCapture(ev.pointerId);
      pad.drawing = true;
      pad.dirty = true;
      last = point(ev);
      dot(last);
      on.down();
    });

    canvas.addEventListener("pointermove", (ev) => {
      if (!pad.drawing) return;
      ev.preventDefault();
      const events = typeof ev.getCoalescedEvents === "function" ? ev.getCoalescedEvents() : [];
      for (const e of events.length ? events : [ev]) {
        const p = point(e);
        line(last, p);
        last = p;
      }
      on.move();
    });

    function stop(ev) {
      if (!pad.drawing) return;
      pad.drawing = false;
      if (canvas.hasPointerCapture(ev.pointerId)) canvas.releasePointerCapture(ev.pointerId);
      on.lift();
    }
    canvas.addEventListener("pointerup", stop);
    canvas.addEventListener("pointercancel", stop);
    canvas.addEventListener("contextmenu", (ev) => ev.preventDefault());
    return pad;
  }

  // Sends a pad's drawing as a PNG to `url`, one request at a time: a drawing that changes
  // while one is in flight is sent as soon as it returns, so a slow server sees the latest
  // drawing, never a queue of stale ones. on.answer(body) gets an answer, on.refused(status,
  // detail) a refusal and on.unreachable() a network failure; none comes after cancel() for
  // a request sent before it.
  function makeSender(pad, url, on) {
    let seq = 0; // bumped by cancel()
    let inflight = null;
    let busy = false;
    let again = false;

    async function send() {
      if (!pad.dirty) return;
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
        const blob = await pad.toBlob();
        if (mine !== seq || !blob) return;
        const form = new FormData();
        form.append("file", blob, "drawing.png");
        const response = await fetch(url, {
          method: "POST",
          body: form,
          signal: controller.signal,
        });
        const body = await response.json().catch(() => ({}));
        if (mine !== seq) return; // cleared meanwhile
        if (response.ok) {
          on.answer(body);
        } else {
          on.refused(response.status, typeof body.detail === "string" ? body.detail : "");
        }
      } catch (err) {
        if (err.name !== "AbortError" && mine === seq) on.unreachable();
      } finally {
        if (inflight === controller) inflight = null;
        busy = false;
        if (again && pad.dirty) send();
      }
    }

    function cancel() {
      seq++;
      again = false;
      if (inflight) inflight.abort();
    }

    return { send, cancel };
  }

  // The answer's confidence, "not sure" below the server's --min-confidence.
  function showConfidence(element, result) {
    const unsure = result.sure === false;
    element.classList.toggle("unsure", unsure);
    element.textContent = format(unsure ? text.not_sure : text.sure,
      { percent: percent(result.confidence) });
    element.title = typeof result.min_confidence === "number"
      ? format(text.threshold, { percent: `${(100 * result.min_confidence).toFixed(0)}%` })
      : "";
    return unsure;
  }

  function clearConfidence(element) {
    element.innerHTML = "&nbsp;";
    element.classList.remove("unsure");
    element.title = "";
  }

  // ---------------------------------------------------------------- the digit pad

  const preview = document.getElementById("preview");
  const previewCtx = preview.getContext("2d");
  const labelEl = document.getElementById("label");
  const confidenceEl = document.getElementById("confidence");
  const barsEl = document.getElementById("bars");
  const statusEl = document.getElementById("status");
  let digitTimer = null;

  function schedulePredict() {
    active = digitPad;
    clearTimeout(digitTimer);
    digitTimer = setTimeout(digitSender.send, DEBOUNCE_MS);
  }

  const digitPad = makePad(document.getElementById("pad"), {
    down: schedulePredict,
    move: schedulePredict,
    lift() {
      clearTimeout(digitTimer);
      digitSender.send();
    },
  });

  const digitSender = makeSender(digitPad, "/predict", {
    answer(body) {
      show(body);
      setStatus(statusEl, text.keep_drawing);
    },
    refused(status, detail) {
      resetResult();
      if (detail === text.no_digit_detail) { // a blank or too small drawing
        setStatus(statusEl, text.no_digit, true);
      } else {
        setStatus(statusEl, detail || format(text.server_answered, { status }), true);
      }
    },
    unreachable() {
      setStatus(statusEl, text.unreachable, true);
    },
  });

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

  function resetResult() {
    labelEl.textContent = "?";
    labelEl.classList.add("empty");
    labelEl.classList.remove("unsure");
    clearConfidence(confidenceEl);
    for (const bar of barsEl.children) {
      bar.style.width = "0%";
      bar.dataset.pct = "";
      bar.classList.remove("top");
    }
    previewCtx.fillStyle = "#000";
    previewCtx.fillRect(0, 0, preview.width, preview.height);
  }

  function clearDigit() {
    digitSender.cancel();
    clearTimeout(digitTimer);
    digitPad.reset();
    resetResult();
    setStatus(statusEl, text.draw);
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
    labelEl.classList.toggle("unsure", showConfidence(confidenceEl, result));
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

  // ---------------------------------------------------------------- the number pad

  const frames = document.getElementById("number-boxes"); // over the pad, the same size
  const framesCtx = frames.getContext("2d");
  const numberTextEl = document.getElementById("number-text");
  const numberConfidenceEl = document.getElementById("number-confidence");
  const numberMethodEl = document.getElementById("number-method");
  const numberDigitsEl = document.getElementById("number-digits");
  const numberStatusEl = document.getElementById("number-status");
  let readTimer = null;

  const numberPad = makePad(document.getElementById("number"), {
    down() {
      active = numberPad;
      clearTimeout(readTimer);
      clearFrames(); // they framed the number before this stroke
    },
    move() {},
    lift() {
      clearTimeout(readTimer);
      readTimer = setTimeout(numberSender.send, READ_DELAY_MS);
    },
  });

  const numberSender = makeSender(numberPad, "/read", {
    answer(body) {
      showNumber(body);
      setStatus(numberStatusEl, text.keep_writing);
    },
    refused(status, detail) {
      resetNumber();
      if (detail === text.no_digits_detail) { // a blank drawing, or specks
        setStatus(numberStatusEl, text.no_digits, true);
      } else {
        setStatus(numberStatusEl, detail || format(text.server_answered, { status }), true);
      }
    },
    unreachable() {
      setStatus(numberStatusEl, text.unreachable, true);
    },
  });

  function clearFrames() {
    framesCtx.clearRect(0, 0, frames.width, frames.height);
  }

  // A frame round each digit read, labelled with its class name ("7", "৭"): the boxes are in
  // the PNG's pixels, which are the pad's.
  function drawFrames(digits) {
    clearFrames();
    framesCtx.lineWidth = 3;
    framesCtx.strokeStyle = FRAME_COLOUR;
    framesCtx.fillStyle = FRAME_COLOUR;
    framesCtx.font = "bold 28px system-ui, sans-serif";
    framesCtx.textBaseline = "bottom";
    for (const digit of digits) {
      if (!Array.isArray(digit.box) || digit.box.length !== 4) continue;
      const [x0, y0, x1, y1] = digit.box;
      framesCtx.strokeRect(x0, y0, x1 - x0, y1 - y0);
      framesCtx.fillText(String(digit.label), x0 + 2, y0 >= 30 ? y0 - 3 : y1 + 28);
    }
  }

  function resetNumber() {
    numberTextEl.textContent = "?";
    numberTextEl.classList.add("empty");
    numberTextEl.classList.remove("unsure");
    clearConfidence(numberConfidenceEl);
    numberMethodEl.textContent = "";
    numberDigitsEl.replaceChildren();
    clearFrames();
  }

  function clearNumber() {
    numberSender.cancel();
    clearTimeout(readTimer);
    numberPad.reset();
    resetNumber();
    setStatus(numberStatusEl, text.write);
  }

  function readNow() {
    clearTimeout(readTimer);
    numberSender.send();
  }

  function showNumber(result) {
    const digits = Array.isArray(result.digits) ? result.digits : [];
    numberTextEl.textContent = typeof result.text === "string" ? result.text : "";
    numberTextEl.classList.remove("empty");
    numberTextEl.classList.toggle("unsure", showConfidence(numberConfidenceEl, result));
    numberMethodEl.textContent = format(text.method, { method: String(result.method) });
    numberDigitsEl.replaceChildren(...digits.map((digit) => {
      const chip = document.createElement("span");
      chip.className = "digit";
      chip.dataset.label = String(digit.label);
      const probability = document.createElement("small");
      probability.textContent = percent(digit.probability);
      chip.append(String(digit.label), " ", probability);
      return chip;
    }));
    if (!numberPad.drawing) drawFrames(digits); // a stroke begun since would not match them
  }

  // ---------------------------------------------------------------- both

  // Before any drawing, Esc clears the digit pad, or the only one of a run that reads whole
  // numbers.
  active = data.task === "read" ? numberPad : digitPad;

  document.getElementById("clear").addEventListener("click", clearDigit);
  document.getElementById("number-clear").addEventListener("click", clearNumber);
  document.getElementById("number-read").addEventListener("click", readNow);
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") (active === numberPad ? clearNumber : clearDigit)();
  });

  buildBars(classes.length);
  clearDigit();
  clearNumber();
})();
