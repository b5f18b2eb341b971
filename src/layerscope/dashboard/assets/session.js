// Each browser tab is one visitor's session: its drawings and what it has shown stay its own (session.py). The page
// draws a random id once and sends it, as the X-Layerscope-Session header, with every request to its own server:
// Dash's callbacks, the Draw panel's fast path (draw.js) and anything else the page fetches from its origin. A header,
// not a cookie, because a dashboard shown in a notebook's iframe is a third-party frame, where cookies are not sent.
(function () {
  // one id per tab, kept over a reload (sessionStorage), so what the page keeps in sessionStorage (groups, rows)
  // still names this session's drawings; a new tab draws a new one
  const fresh = function () {
    const bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes); // also where crypto.randomUUID is missing (plain http on a team server)
    return Array.from(bytes, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  };
  let session = null;
  try {
    session = window.sessionStorage.getItem("layerscope-session");
    if (!/^[0-9a-f]{32}$/.test(session || "")) {
      session = fresh();
      window.sessionStorage.setItem("layerscope-session", session);
    }
  } catch (e) {
    session = fresh(); // storage refused (a sandboxed frame): one session per page load
  }
  window.layerscopeSession = session;
  const fetchOriginal = window.fetch.bind(window);
  window.fetch = function (input, init) {
    const url = new URL(input instanceof Request ? input.url : String(input), window.location.href);
    if (url.origin !== window.location.origin) {
      return fetchOriginal(input, init);
    }
    const headers = new Headers((init && init.headers) || (input instanceof Request ? input.headers : undefined));
    headers.set("X-Layerscope-Session", session);
    return fetchOriginal(input, Object.assign({}, init, { headers: headers }));
  };
})();
