// Every page's live connection: how soon htmx's ws extension tries again after a socket drops.
//
// The extension's default ("full-jitter") waits up to 1, 2, 4 ... 64 s after each failed try:
// a page kept retrying for 20 s and more after a restart. A page here is worth little when it
// is out of date, so it retries every 0.5–1 s for as long as the server is away (a refused
// connection costs nothing), and reconnects within about a second of the server's return.
// The jitter spreads thousands of pages reconnecting after a restart over that second.
(function () {
  "use strict";

  var FIRST_MS = 250;
  var MOST_MS = 1000;

  htmx.config.wsReconnectDelay = function (retryCount) {
    var ceiling = Math.min(MOST_MS, FIRST_MS * Math.pow(2, retryCount));
    return ceiling / 2 + Math.random() * ceiling / 2;
  };
})();
