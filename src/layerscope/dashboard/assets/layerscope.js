// Gallery, neighbour and top-k thumbnails, as in the report's application: a click selects the image, a double-click
// adds it to the activation panels. One document-level handler each, so a click's request goes out at once: no
// pattern-matching callback gathers the n_clicks of every thumbnail on the page first. The key travels in a store,
// so the server gets exactly the image that was clicked (and checks it: DashboardState.image_key). What a click
// changes most visibly is drawn from here at once: the selected image's card and, where shown, its feature maps.
(function () {
  const ls = (window.layerscope = window.layerscope || {});

  // a route of the dashboard's own (wiring.py Callbacks.route, live.py) under the app's prefix
  ls.route = function (path) {
    let prefix = "/";
    const config = document.getElementById("_dash-config");
    if (config) {
      try { prefix = JSON.parse(config.textContent).requests_pathname_prefix || "/"; } catch (e) { /* default */ }
    }
    return prefix + path;
  };

  ls.isBars = function (gd) {
    return !!(gd && gd.data && gd.data[0] && gd.data[0].type === "bar");
  };

  // a bar chart of class probabilities (figures.probability_bars) shown anew: Plotly.react with the new values,
  // measured faster than restyle and animate for these small charts
  ls.redrawBars = function (gd, bars) {
    if (!ls.isBars(gd) || !window.Plotly) { return null; }
    const trace = gd.data[0];
    const marker = Object.assign({}, trace.marker, {
      color: bars.color,
      line: Object.assign({}, trace.marker && trace.marker.line, { color: bars.line }),
    });
    const data = gd.data.slice();
    data[0] = Object.assign({}, trace, { x: bars.x, text: bars.text, marker: marker });
    return window.Plotly.react(gd, data, gd.layout);
  };

  // -- the selected image's card (sidebar.py selected_card), drawn here from one GET request ---------------------------
  const element = function (tag, text, className) {
    const node = document.createElement(tag);
    if (text) { node.textContent = text; }
    if (className) { node.className = className; }
    return node;
  };
  // the card's plot once dcc.Graph has made it (its script loads after the page's first requests)
  const whenPlotted = function (id, then, tries) {
    const gd = document.querySelector("#" + id + " .js-plotly-plot");
    if (gd && window.Plotly) { then(gd); return; }
    if ((tries || 0) < 200) { setTimeout(function () { whenPlotted(id, then, (tries || 0) + 1); }, 50); }
  };
  let asked = { key: undefined, promise: null };
  const paint = function (card, promise) {
    if (asked.promise !== promise) { return; } // a newer selection is on its way
    const image = document.getElementById("preview-image");
    const caption = document.getElementById("preview-caption");
    if (card.error) {
      if (image) { image.removeAttribute("src"); }
      if (caption) { caption.replaceChildren(element("span", card.error, "bad")); }
      whenPlotted("preview-probs", function (gd) {
        if (asked.promise === promise) {
          window.Plotly.react(gd, [], { height: gd.layout.height, xaxis: { visible: false }, yaxis: { visible: false } });
        }
      });
      return;
    }
    if (image) { image.src = card.image; }
    if (caption) {
      const name = element("b", card.name);
      if (card.live) { name.dataset.live = "1"; } // the Draw panel's fast path restyles this card (draw.js)
      const line = element("div");
      card.line.forEach(function (segment) {
        const text = segment[0], kind = segment[1];
        if (!kind) {
          line.appendChild(document.createTextNode(text));
        } else if (kind === "live") {
          const live = element("span", "", "live-caption");
          live.dataset.text = text;
          live.title = text;
          line.appendChild(live);
        } else {
          line.appendChild(element(kind === "b" ? "b" : "span", text, kind === "b" ? "" : kind));
        }
      });
      caption.replaceChildren.apply(caption, card.line.length ? [name, line] : [name]);
    }
    whenPlotted("preview-probs", function (gd) {
      if (asked.promise !== promise) { return; }
      if (card.bars && ls.isBars(gd)) {
        ls.redrawBars(gd, card.bars);
      } else {
        window.Plotly.react(gd, card.figure.data, card.figure.layout);
      }
    });
  };
  // Show image ``key``'s card; resolves to whether "Explain misclassification" is off for it. Asked twice for the
  // same image (a click, then the SELECTED store it sets), it is fetched once; a drawing's card is fetched again when
  // its strokes changed (``context``: the clientside callback's, sidebar.py).
  ls.showSelected = function (key, context) {
    const fired = context && (context.triggered || [])[0];
    const strokes = !!fired && fired.prop_id.indexOf("draw-version") === 0;
    const drawing = typeof key === "string" && key.indexOf("draw:") === 0;
    if (strokes && !drawing) { return window.dash_clientside.no_update; }
    if (!strokes && asked.promise && asked.key === key) {
      return asked.promise.then(function (card) { return !card.explainable; });
    }
    const promise = fetch(ls.route("_layerscope/selected") + "?image=" + encodeURIComponent(key), { cache: "no-store" })
      .then(function (r) { return r.json(); })
      .catch(function (e) { return { error: "the selected image could not be shown (" + e + "); reload the page." }; })
      .then(function (card) { paint(card, promise); return card; });
    asked = { key: key, promise: promise };
    return promise.then(function (card) { return !card.explainable; });
  };

  // the key of the image whose card the sidebar shows (or is fetching): the selected image
  ls.selectedKey = function () { return asked.key; };

  // The feature maps of a newly selected image, at once where the Network view shows them: each conv layer's strip
  // by URL (inside.py fmap_png; its callback sets the same URL a moment later), with no callback in between. A
  // drawing is the page's own: its maps come with the callbacks.
  ls.showMaps = function (key) {
    const area = document.getElementById("fmap-area");
    if (!area || !area.dataset.url || area.offsetParent === null) { return; }
    if (typeof key !== "number" && !/^mean:\d+$/.test(String(key))) { return; }
    area.querySelectorAll(".fmap-grid").forEach(function (grid) {
      const url = area.dataset.url + "&layer=" + encodeURIComponent(grid.dataset.layer) +
        "&scale=" + encodeURIComponent(grid.dataset.scale) + "&image=" + encodeURIComponent(key) +
        (grid.dataset.count ? "&first=" + grid.dataset.first + "&count=" + grid.dataset.count : "");
      grid.style.setProperty("--sprite", 'url("' + url + '")');
      grid.dataset.live = "0";
    });
  };

  const keyOf = function (event) {
    const thumb = event.target.closest && event.target.closest(".thumb");
    if (!thumb || !thumb.id || !window.dash_clientside || !window.dash_clientside.set_props) { return undefined; }
    try {
      return JSON.parse(thumb.id).key;
    } catch (e) {
      return undefined;
    }
  };
  document.addEventListener("click", function (event) {
    const key = keyOf(event);
    if (key === undefined) { return; }
    ls.showMaps(key);
    // the page's selection follows once the card is drawn (or after 150 ms): what it sets going (the address, the
    // ring, the other views' gates) would hold the main thread while the card's answer waits for it
    const shown = ls.showSelected(key);
    Promise.race([shown, new Promise(function (done) { setTimeout(done, 150); })]).then(function () {
      if (asked.key === key) { window.dash_clientside.set_props("selected", { data: key }); }
    });
  });
  document.addEventListener("dblclick", function (event) {
    const key = keyOf(event);
    if (key !== undefined) { window.dash_clientside.set_props("dblclick", { data: { key: key, at: Date.now() } }); }
  });
})();
