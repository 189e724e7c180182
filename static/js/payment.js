// Payment page behaviour: copy button and countdown. Both re-bind after HTMX swaps,
// because the status region is replaced whole when the server pushes a new state.
(function () {
  "use strict";

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
  document.addEventListener("DOMContentLoaded", tick);
  document.addEventListener("htmx:afterSettle", tick);
})();
