// Payment page behaviour: the connection state, the copy button and the countdown. All of it
// re-binds after HTMX swaps, because the status region is replaced whole when the server
// pushes a new state.
(function () {
  "use strict";

  // Close codes after which htmx's ws extension tries again by itself (see live.js).
  var RETRIED = [1006, 1011, 1012, 1013];
  var LABELS = {
    connecting: "Conectando…",
    online: "Conectado",
    offline: "Sem conexão. Reconectando…",
    closed: "Desconectado. Recarregue a página."
  };
  var online = false;

  // Actions that need the server (the sandbox's "Simular pagamento") wait for the socket:
  // while it is down they would fail, and the page could not show their outcome anyway.
  function applyConnection() {
    document.querySelectorAll("[data-needs-connection]").forEach(function (button) {
      button.disabled = !online;
      button.title = online ? "" : "Aguardando a conexão com o servidor";
    });
  }

  function setLive(state) {
    online = state === "online";
    var box = document.getElementById("live-state");
    if (box) {
      box.dataset.state = state;
      box.querySelector(".label").textContent = LABELS[state];
    }
    applyConnection();
  }

  document.addEventListener("htmx:wsOpen", function () { setLive("online"); });
  document.addEventListener("htmx:wsError", function () { setLive("offline"); });
  document.addEventListener("htmx:wsClose", function (event) {
    var code = event.detail.event.code;
    setLive(RETRIED.indexOf(code) >= 0 ? "offline" : "closed");
  });

  // -- the sandbox form: say why a simulation did not happen ------------------------------

  function sandboxError(event, text) {
    var form = event.detail.elt.closest && event.detail.elt.closest(".sandbox");
    var slot = form && form.querySelector("[data-sandbox-error]");
    if (!slot) return;
    slot.textContent = text;
    slot.hidden = !text;
  }

  document.addEventListener("htmx:beforeRequest", function (event) { sandboxError(event, ""); });
  document.addEventListener("htmx:sendError", function (event) {
    sandboxError(event, "Sem conexão com o servidor: tente de novo em instantes.");
  });
  document.addEventListener("htmx:beforeSwap", function (event) {
    // 409: the charge expired or was cancelled; the answer is the status that says so.
    var form = event.detail.elt.closest && event.detail.elt.closest(".sandbox");
    if (form && event.detail.xhr.status === 409) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
  document.addEventListener("htmx:responseError", function (event) {
    sandboxError(event, "O servidor não simulou o pagamento (erro " + event.detail.xhr.status +
      "): tente de novo.");
  });

  // -- copy button --------------------------------------------------------------------------

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain http on a LAN is not a secure context: fall back to a selection copy.
    var area = document.getElementById("brcode");
    area.select();
    return document.execCommand("copy") ? Promise.resolve() : Promise.reject(new Error("copy"));
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-target]");
    if (!button) return;
    var source = document.getElementById(button.dataset.copyTarget);
    var feedback = document.querySelector("[data-copy-feedback]");
    copyText(source.value).then(function () {
      feedback.textContent = "Código copiado!";
      feedback.hidden = false;
      setTimeout(function () { feedback.hidden = true; }, 3000);
    }, function () {
      feedback.textContent = "Não foi possível copiar: selecione o código e copie.";
      feedback.hidden = false;
    });
  });

  // -- countdown ----------------------------------------------------------------------------

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  function tick() {
    var clock = document.querySelector("[data-countdown]");
    if (!clock) return;
    var left = Math.max(0, Math.floor((Date.parse(clock.getAttribute("datetime")) - Date.now()) / 1000));
    var hours = Math.floor(left / 3600);
    var text = (hours ? hours + ":" : "") + pad(Math.floor(left % 3600 / 60)) + ":" + pad(left % 60);
    clock.textContent = text;
    if (left === 0) {
      // The server pushes the expired state at this moment; say it meanwhile.
      clock.closest(".countdown").textContent = "Prazo encerrado";
    }
  }

  setInterval(tick, 1000);
  document.addEventListener("DOMContentLoaded", function () {
    tick();
    applyConnection();
  });
  // The receipt's "Imprimir" (strict CSP: no inline handler).
  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("[data-print]")) {
      window.print();
    }
  });
  // A form's answer settles; a pushed state arrives as a socket message (no settle event).
  ["htmx:afterSettle", "htmx:wsAfterMessage"].forEach(function (name) {
    document.addEventListener(name, function () {
      tick();
      applyConnection();
    });
  });
})();
