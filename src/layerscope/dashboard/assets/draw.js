// The Draw panel's canvas: pointer events (mouse, pen and touch) draw strokes with a round pen, and the strokes, as
// points normalised to [0, 1] (origin top left), travel to the server through the "draw-strokes" store: at most
// every THROTTLE_MS while drawing, and at once when a stroke ends. Clear and Undo are handled here too.
(function () {
  const CANVAS = "draw-canvas";
  const STORE = "draw-strokes";
  const THROTTLE_MS = 70;
  let strokes = [];
  let current = null;
  let version = 0;
  let lastPush = 0;
  let timer = null;

  // done: a stroke ended (or Clear, Undo); mid-stroke pushes update the bars, finished strokes everything
  function push(done) {
    if (timer !== null) {
      clearTimeout(timer);
      timer = null;
    }
    lastPush = Date.now();
    version += 1;
    if (window.dash_clientside && window.dash_clientside.set_props) {
      const copy = strokes.map(function (s) { return s.slice(); });
      window.dash_clientside.set_props(STORE, { data: { strokes: copy, version: version, done: done !== false } });
    }
  }

  function schedule() {
    const wait = THROTTLE_MS - (Date.now() - lastPush);
    if (wait <= 0) {
      push(false);
    } else if (timer === null) {
      timer = setTimeout(function () { push(false); }, wait);
    }
  }

  function pen(canvas) {
    const ctx = canvas.getContext("2d");
    ctx.lineWidth = canvas.width / 14;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.strokeStyle = "white";
    ctx.fillStyle = "white";
    return ctx;
  }

  function segment(canvas, stroke, from) {
    const ctx = pen(canvas);
    const w = canvas.width, h = canvas.height;
    if (stroke.length === 1) {
      ctx.beginPath();
      ctx.arc(stroke[0][0] * w, stroke[0][1] * h, ctx.lineWidth / 2, 0, 2 * Math.PI);
      ctx.fill();
      return;
    }
    ctx.beginPath();
    ctx.moveTo(stroke[from - 1][0] * w, stroke[from - 1][1] * h);
    for (let i = from; i < stroke.length; i++) {
      ctx.lineTo(stroke[i][0] * w, stroke[i][1] * h);
    }
    ctx.stroke();
  }

  function redraw(canvas) {
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "black";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    strokes.forEach(function (s) {
      segment(canvas, s.slice(0, 1), 0);
      if (s.length > 1) { segment(canvas, s, 1); }
    });
  }

  function point(canvas, event) {
    const r = canvas.getBoundingClientRect();
    const x = Math.min(1, Math.max(0, (event.clientX - r.left) / r.width));
    const y = Math.min(1, Math.max(0, (event.clientY - r.top) / r.height));
    return [Math.round(x * 1e4) / 1e4, Math.round(y * 1e4) / 1e4];
  }

  function attach(canvas) {
    if (canvas.dataset.layerscopeDraw) { return; }
    canvas.dataset.layerscopeDraw = "1";
    redraw(canvas);
    canvas.addEventListener("pointerdown", function (event) {
      event.preventDefault();
      if (canvas.setPointerCapture) {
        try { canvas.setPointerCapture(event.pointerId); } catch (e) { /* synthetic events have no capture */ }
      }
      current = [point(canvas, event)];
      strokes.push(current);
      segment(canvas, current, 0);
      schedule();
    });
    canvas.addEventListener("pointermove", function (event) {
      if (current === null) { return; }
      event.preventDefault();
      current.push(point(canvas, event));
      segment(canvas, current, current.length - 1);
      schedule();
    });
    function end() {
      if (current === null) { return; }
      current = null;
      push();
    }
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
    canvas.addEventListener("lostpointercapture", end);
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest ? event.target.closest("#draw-clear, #draw-undo") : null;
    const canvas = document.getElementById(CANVAS);
    if (!button || !canvas) { return; }
    if (button.id === "draw-clear") {
      strokes = [];
    } else {
      strokes.pop();
    }
    current = null;
    redraw(canvas);
    push();
  });

  // Dash renders the page after this script runs, and may render the canvas again: attach whenever it appears.
  function scan() {
    const canvas = document.getElementById(CANVAS);
    if (canvas) { attach(canvas); }
  }
  new MutationObserver(scan).observe(document.documentElement, { childList: true, subtree: true });
  document.addEventListener("DOMContentLoaded", scan);
})();
