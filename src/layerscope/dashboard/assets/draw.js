// The Draw panel's canvas: pointer events (mouse, pen and touch) draw strokes with a round pen; the strokes are
// points normalised to [0, 1] (origin top left). Clear and Undo are handled here too.
//
// Two ways to the server:
// - while drawing, the fast path (dashboard/live.py): the strokes are posted to "_layerscope/draw", one request in
//   flight at a time while the pen moves (the next carries the newest strokes) and one at once when a stroke ends;
//   the answer redraws in place the Draw card's bars, caption and preview, the live row of each open activation
//   panel, the feature maps and the "Selected image" card. No Dash callback runs, so the page follows the pen.
// - once the first stroke's answer is drawn, once the pen rests for SETTLE_MS, and on Clear and Undo, the
//   "draw-strokes" store: the Dash callbacks redraw every view from the server's state, including the slower ones
//   (nearest images, the projections' star).
// Every request carries a version (increasing, also across page loads): the server ignores older strokes than it
// has already shown, and so does this script.
// The sidebar's "Draw over" starts a drawing on a copy of the selected image: the canvas shows it under the pen, and
// both ways to the server name it ("over": its image key), where the strokes are laid over its pixels unmoved
// (drawing.draw_over). Clear starts again from a blank canvas; Undo keeps the image.
(function () {
  const CANVAS = "draw-canvas";
  const STORE = "draw-strokes";
  const ROUTE = "_layerscope/draw";
  const SETTLE_MS = 400;
  const LIVE = "draw:live"; // the live drawing's image key (dashboard/state.py)
  let strokes = [];
  let current = null;
  let version = 0;
  let applied = 0; // the newest version whose answer the page shows
  let inflight = 0; // requests sent, not answered
  let pending = false; // strokes changed while a request was in flight
  let ended = false; // a stroke ended since the last request (benchmarks/draw.py times from there)
  let settleTimer = null;
  let settleWhenShown = false; // the first stroke's answer, once drawn, selects the drawing
  let over = null; // the key of the image drawn over, or null
  let overImage = null; // that image, as the canvas shows it
  let overAsked = null; // "Draw over" pressed before the Draw view was laid out: {key, src}, for the canvas to come

  function nextVersion() {
    version = Math.max(version + 1, Date.now());
    return version;
  }

  function copy() {
    return strokes.map(function (s) { return s.slice(); });
  }

  // -- the Dash callbacks --------------------------------------------------------------------------------------------
  // changed: the strokes changed without a fast request (Clear, Undo), whose older answers must not paint over
  // what Dash draws now; after a rest, the last fast request had these very strokes
  function settle(changed) {
    clearTimeout(settleTimer);
    settleTimer = null;
    settleWhenShown = false;
    nextVersion();
    if (changed) { applied = version; }
    const canvas = document.getElementById(CANVAS);
    if (canvas) { canvas.dataset.settled = String(version); } // benchmarks/draw.py waits for the bars of this version
    if (window.dash_clientside && window.dash_clientside.set_props) {
      window.dash_clientside.set_props(STORE, { data: { strokes: copy(), over: over, version: version, done: true } });
    }
  }

  function settleLater() {
    clearTimeout(settleTimer);
    settleTimer = setTimeout(function () { settle(false); }, SETTLE_MS);
  }

  // -- the fast path -------------------------------------------------------------------------------------------------
  // the shared helpers (layerscope.js, loaded after this script): looked up when called
  function url() { return window.layerscope.route(ROUTE); }
  function isBars(gd) { return window.layerscope.isBars(gd); }
  function redrawBars(gd, bars) { return window.layerscope.redrawBars(gd, bars); }

  // what the page shows of the live drawing: panel rows with the order and colour range they were drawn with
  // (callbacks.py _panel), feature-map grids (inside.py _fmap_frame)
  function asks() {
    const panels = [];
    document.querySelectorAll("[data-live-layer]").forEach(function (row) {
      panels.push({
        layer: row.dataset.liveLayer,
        order: (row.dataset.order || "").split(",").filter(function (u) { return u !== ""; }).map(Number),
        lo: Number(row.dataset.lo),
        hi: Number(row.dataset.hi),
      });
    });
    const maps = [];
    document.querySelectorAll('#fmap-area .fmap-grid[data-live="1"]').forEach(function (grid) {
      maps.push({ layer: grid.dataset.layer, scale: grid.dataset.scale, first: Number(grid.dataset.first || 0),
        count: Number(grid.dataset.count || 0) });
    });
    return { panels: panels, maps: maps };
  }

  function caption(selector, text) {
    const node = document.querySelector(selector);
    if (node) { node.setAttribute("data-text", text); node.setAttribute("title", text); }
  }

  // an image decoded before it is swapped in: a CSS background or <img> whose data changes decodes in the frame that
  // paints it (~20-35 ms of the main thread here); Image.decode() does it off the main thread
  function decoded(uri) {
    const image = new Image();
    image.src = uri;
    return image.decode().catch(function () { return null; });
  }

  function afterPaint() {
    return new Promise(function (resolve) { requestAnimationFrame(function () { setTimeout(resolve, 0); }); });
  }

  function apply(answer, canvas) {
    if (!answer || answer.stale || answer.empty || answer.version < applied) { return; }
    applied = answer.version;
    const selected = document.querySelector("#preview-caption [data-live]"); // the drawing is the selected image
    const maps = document.querySelectorAll('#fmap-area .fmap-grid[data-live="1"]');
    const images = [answer.preview].concat(selected ? [answer.large] : [], Object.values(answer.maps));
    const ready = Promise.all(images.map(decoded));
    const drawn = [];
    const gd = document.querySelector("#draw-probs .js-plotly-plot");
    if (isBars(gd)) {
      drawn.push(redrawBars(gd, answer.bars));
    } else if (gd && answer.figure && window.Plotly) {
      drawn.push(window.Plotly.react(gd, answer.figure.data, answer.figure.layout));
    }
    caption("#draw-caption .live-caption", answer.caption);
    if (selected) { caption("#preview-caption .live-caption", answer.caption); }
    document.querySelectorAll("[data-live-layer]").forEach(function (row) {
      const colours = answer.panels[row.dataset.liveLayer];
      if (!colours) { return; }
      row.querySelectorAll(".cell").forEach(function (cell, i) {
        if (i < colours.length) { cell.style.background = colours[i]; }
      });
    });
    drawn.push(ready.then(function () {
      if (answer.version !== applied) { return; } // a newer answer is being drawn
      const preview = document.getElementById("draw-preview");
      if (preview) { preview.src = answer.preview; }
      const large = document.getElementById("preview-image");
      if (selected && large) { large.src = answer.large; }
      maps.forEach(function (grid) {
        const strip = answer.maps[grid.dataset.layer];
        if (strip) { grid.style.setProperty("--sprite", 'url("' + strip + '")'); }
      });
    }));
    Promise.all(drawn).then(afterPaint).then(function () {
      if (!canvas || answer.version !== applied) { return; }
      canvas.dataset.shown = String(answer.version);
      // the "Selected image" card repeats the bars: redrawn after the rest, only for a finished stroke (a Plotly
      // redraw costs ~20-30 ms of the main thread on a 2-core laptop)
      if (selected && answer.version >= Number(canvas.dataset.ended || 0)) {
        redrawBars(document.querySelector("#preview-probs .js-plotly-plot"), answer.bars);
      }
      if (settleWhenShown && answer.version >= Number(canvas.dataset.ended || 0)) { settle(false); }
    });
  }

  // one request in flight while the pen moves (the next carries the newest strokes); ``now``: a stroke ended, its
  // request goes at once, beside one in flight
  function fast(canvas, now) {
    if (inflight > 0 && !now) { pending = true; return; }
    if (!strokes.length && over === null) { return; }
    inflight += 1;
    pending = false;
    const body = Object.assign(
      {
        strokes: copy(),
        over: over,
        version: nextVersion(),
        figure: !isBars(document.querySelector("#draw-probs .js-plotly-plot")),
      },
      asks()
    );
    if (ended) { canvas.dataset.ended = String(body.version); ended = false; }
    // a stroke ended: the answer in flight is not drawn, which would hold the main thread when this one arrives
    if (now) { applied = body.version; }
    fetch(url(), { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })
      .then(function (r) { return r.ok ? r.json() : null; })
      .catch(function (e) { console.warn("layerscope draw:", e); return null; })
      .then(function (answer) {
        inflight -= 1;
        if (pending) { fast(canvas); } // the next request travels while this answer is drawn
        apply(answer, canvas);
      });
  }

  // -- drawing ---------------------------------------------------------------------------------------------------------
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
    if (overImage !== null && overImage.complete && overImage.naturalWidth > 0) {
      ctx.imageSmoothingEnabled = false; // the image's own pixels, as large squares
      ctx.drawImage(overImage, 0, 0, canvas.width, canvas.height);
    }
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

  // the selected image onto the canvas, the strokes so far dropped; the server hears of it at once (settle)
  function startOver(canvas, asked) {
    overAsked = null;
    strokes = [];
    current = null;
    over = asked.key;
    overImage = new Image();
    overImage.onload = function () { redraw(canvas); };
    overImage.src = asked.src;
    canvas.dataset.over = String(asked.key);
    redraw(canvas);
    settle(true);
  }

  function attach(canvas) {
    if (canvas.dataset.layerscopeDraw || canvas.dataset.off) { return; } // off: the Run's images cannot be drawn
    canvas.dataset.layerscopeDraw = "1";
    redraw(canvas);
    if (overAsked !== null) { startOver(canvas, overAsked); }
    canvas.addEventListener("pointerdown", function (event) {
      event.preventDefault();
      if (canvas.setPointerCapture) {
        try { canvas.setPointerCapture(event.pointerId); } catch (e) { /* synthetic events have no capture */ }
      }
      clearTimeout(settleTimer); // the pen is moving again: the Dash update waits for it to rest
      current = [point(canvas, event)];
      strokes.push(current);
      segment(canvas, current, 0);
      fast(canvas);
    });
    canvas.addEventListener("pointermove", function (event) {
      if (current === null) { return; }
      event.preventDefault();
      current.push(point(canvas, event));
      segment(canvas, current, current.length - 1);
      fast(canvas);
    });
    function end() {
      if (current === null) { return; }
      current = null;
      ended = true;
      fast(canvas, true);
      // the first stroke makes the drawing the selected image as soon as its answer is drawn, so that the
      // activation panels and feature maps show it (and follow the next strokes); later strokes wait for the pen
      // to rest
      settleWhenShown = strokes.length === 1;
      settleLater();
    }
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
    canvas.addEventListener("lostpointercapture", end);
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest ? event.target.closest("#draw-clear, #draw-undo, #draw-over") : null;
    const canvas = document.getElementById(CANVAS);
    if (button && button.id === "draw-over") {
      // the image the sidebar shows; the live drawing itself is drawn on as it is (workspace.js opens the view)
      const key = window.layerscope.selectedKey();
      const image = document.getElementById("preview-image");
      if (key === undefined || key === LIVE || !image || !image.src) { return; }
      const asked = { key: key, src: image.src };
      if (canvas) { startOver(canvas, asked); } else { overAsked = asked; } // attach() takes it
      return;
    }
    if (!button || !canvas) { return; }
    if (button.id === "draw-clear") {
      strokes = [];
      over = null;
      overImage = null;
      delete canvas.dataset.over;
    } else {
      strokes.pop();
    }
    current = null;
    redraw(canvas);
    settle(true);
  });

  // Dash renders the page after this script runs, and may render the canvas again: attach whenever it appears.
  function scan() {
    const canvas = document.getElementById(CANVAS);
    if (canvas) { attach(canvas); }
  }
  new MutationObserver(scan).observe(document.documentElement, { childList: true, subtree: true });
  document.addEventListener("DOMContentLoaded", scan);
})();
