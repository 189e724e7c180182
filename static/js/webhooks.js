// "Webhooks" page behaviour: connection indicator and the copy button of a new secret.
// No handler lives in the markup: the pages' CSP refuses inline scripts.
(function () {
  "use strict";

  function setConnection(online) {
    var box = document.getElementById("connection");
    if (!box) return;
    box.classList.toggle("online", online);
    box.classList.toggle("offline", !online);
    box.querySelector(".label").textContent = online ? "Conectado" : "Desconectado";
  }

  // Without the clipboard API (plain http on another host than localhost).
  function copyBySelection(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.appendChild(area);
    area.select();
    var copied = false;
    try { copied = document.execCommand("copy"); } catch (error) { copied = false; }
    area.remove();
    return copied;
  }

  function copy(button) {
    var text = button.dataset.copy;
    var note = button.closest(".created").querySelector(".copied");
    var done = function () {
      note.textContent = button.dataset.copied || "Copiado!";
      note.hidden = false;
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { if (copyBySelection(text)) done(); });
    } else if (copyBySelection(text)) {
      done();
    }
  }

  // Delegated: the button arrives in swapped partials.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (button) copy(button);
  });

  document.addEventListener("htmx:wsOpen", function () { setConnection(true); });
  document.addEventListener("htmx:wsClose", function () { setConnection(false); });
  document.addEventListener("htmx:wsError", function () { setConnection(false); });
})();
