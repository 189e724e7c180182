// Dashboard behaviour: connection indicator, toasts, copy buttons, and the Pix "speaker"
// (sound + voice). No handler lives in the markup: the pages' CSP refuses inline scripts.
(function () {
  "use strict";

  var TOAST_MS = 6000;
  var SOUND_KEY = "pixweb.sound";
  var lastSpoken = null;

  function setConnection(online) {
    var box = document.getElementById("connection");
    if (!box) return;
    box.classList.toggle("online", online);
    box.classList.toggle("offline", !online);
    box.querySelector(".label").textContent = online ? "Conectado" : "Desconectado";
  }

  function soundEnabled() {
    return localStorage.getItem(SOUND_KEY) !== "off";
  }

  function beep() {
    var Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    var audio = new Context();
    var tone = audio.createOscillator();
    var gain = audio.createGain();
    tone.frequency.value = 880;
    gain.gain.setValueAtTime(0.2, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.4);
    tone.connect(gain).connect(audio.destination);
    tone.start();
    tone.stop(audio.currentTime + 0.4);
  }

  function speak(text) {
    if (!("speechSynthesis" in window)) return;
    var utterance = new SpeechSynthesisUtterance(text);
    utterance.lang = "pt-BR";
    window.speechSynthesis.speak(utterance);
  }

  function announce() {
    var box = document.getElementById("announce");
    if (!box || !box.dataset.seq || box.dataset.seq === lastSpoken) return;
    lastSpoken = box.dataset.seq;
    document.body.dataset.lastAnnounce = box.dataset.speak;  // visible to tests
    if (!soundEnabled()) return;
    beep();
    speak(box.dataset.speak);
  }

  function expireToasts() {
    document.querySelectorAll("#toasts .toast:not([data-timer])").forEach(function (toast) {
      toast.dataset.timer = "1";
      setTimeout(function () { toast.remove(); }, TOAST_MS);
    });
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

  // Delegated: the buttons arrive in swapped form partials.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (button) { copy(button); return; }
    var toast = event.target.closest("#toasts .toast");
    if (toast) toast.remove();
  });

  document.addEventListener("htmx:wsOpen", function () { setConnection(true); });
  document.addEventListener("htmx:wsClose", function () { setConnection(false); });
  document.addEventListener("htmx:wsError", function () { setConnection(false); });
  document.addEventListener("htmx:wsAfterMessage", function () {
    expireToasts();
    announce();
  });
  // Toasts also come from form answers (a Pix attached to a charge).
  document.addEventListener("htmx:afterSwap", expireToasts);

  document.addEventListener("DOMContentLoaded", function () {
    var toggle = document.getElementById("sound-toggle");
    if (toggle) {
      toggle.checked = soundEnabled();
      toggle.addEventListener("change", function () {
        localStorage.setItem(SOUND_KEY, toggle.checked ? "on" : "off");
      });
    }
    // The first message after connecting is the resync: nothing in it is news to speak.
    var box = document.getElementById("announce");
    lastSpoken = box && box.dataset.seq || null;
  });
})();
