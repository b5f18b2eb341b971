// "Click units to switch them off" (the Ablation card, interventions.py): while the mode is on, the body carries the
// class "abl-mode-on", and a click on a cell of an activation panel (a span.cell with data-unit, inside the panel's
// data-layer) sends {layer, unit, t} through the "abl-click" store; the server toggles that unit. One document-level
// handler, so the panels' hundreds of cells need no Dash ids. Switched-off units are outlined by CSS rules written
// here (no panel is rebuilt), and the network graph's crosses are swapped in as its figure's last trace.
(function () {
  const STORE = "abl-click";
  const MODE_CLASS = "abl-mode-on";
  const STYLE_ID = "abl-marks-style";

  document.addEventListener("click", function (event) {
    if (!document.body.classList.contains(MODE_CLASS)) {
      return;
    }
    const cell = event.target.closest && event.target.closest(".cell[data-unit]");
    const panel = cell && cell.closest("[data-layer]");
    if (!panel || !window.dash_clientside || !window.dash_clientside.set_props) {
      return;
    }
    const unit = Number(cell.dataset.unit);
    window.dash_clientside.set_props(STORE, { data: { layer: panel.dataset.layer, unit: unit, t: Date.now() } });
  });

  function styleElement() {
    let style = document.getElementById(STYLE_ID);
    if (!style) {
      style = document.createElement("style");
      style.id = STYLE_ID;
      document.head.appendChild(style);
    }
    return style;
  }

  function selectors(ablations, wantOff) {
    const out = [];
    (ablations || []).forEach(function (a) {
      if ((Number(a.scale) === 0) !== wantOff) {
        return;
      }
      const layer = CSS.escape(String(a.layer));
      (a.units || []).forEach(function (u) {
        out.push('.act-panel[data-layer="' + layer + '"] .cell[data-unit="' + Number(u) + '"]');
      });
    });
    return out;
  }

  window.dash_clientside = Object.assign({}, window.dash_clientside, {
    layerscope_ablate: {
      // the mode on the body, and one outline rule for the switched-off cells, one for the scaled ones
      mark: function (mode, ablations) {
        document.body.classList.toggle(MODE_CLASS, Boolean(mode && mode.length));
        const off = selectors(ablations, true);
        const scaled = selectors(ablations, false);
        let css = "";
        if (off.length) {
          css += off.join(",\n") + " { outline: 2px solid #d62728; outline-offset: -1px; opacity: .45; }\n";
        }
        if (scaled.length) {
          css += scaled.join(",\n") + " { outline: 2px dashed #f08c00; outline-offset: -1px; }\n";
        }
        styleElement().textContent = css;
        return off.length + scaled.length;
      },
      // the graph's crosses (unit_figures.py ablated_trace) in place of its figure's last trace, which the server drew them
      // in; nothing while the figure has not arrived (it will be drawn with them)
      crosses: function (trace, figure) {
        if (!trace || !figure || !figure.data || !figure.data.length) {
          return window.dash_clientside.no_update;
        }
        const data = figure.data.slice(0, -1);
        data.push(trace);
        return Object.assign({}, figure, { data: data });
      },
    },
  });
})();
