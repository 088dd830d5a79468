// New style form: drag-and-drop or file picker with a preview, and descriptor example chips.
// Vanilla JS, no dependencies. The form works without it (plain file input).
(function () {
  "use strict";
  function ready(fn) {
    if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn);
  }
  ready(function () {
    var zone = document.getElementById("dropzone");
    var input = document.getElementById("image");
    var preview = document.getElementById("preview");
    var hint = document.getElementById("drop-hint");
    if (!zone || !input) return;
    var allowed = ["image/png", "image/jpeg", "image/webp"];

    function showError(message) {
      var old = document.getElementById("image-client-error");
      if (old) old.remove();
      if (!message) return;
      var p = document.createElement("p");
      p.className = "field-error";
      p.id = "image-client-error";
      p.setAttribute("role", "alert");
      p.textContent = message;
      var help = document.getElementById("image-help");
      help.parentNode.insertBefore(p, help.nextSibling);
    }

    function show(file) {
      if (!file) return;
      if (allowed.indexOf(file.type) < 0) {
        showError(file.name + " is not a PNG, JPEG or WebP image; choose another file.");
        zone.classList.add("invalid");
        return;
      }
      showError("");
      zone.classList.remove("invalid");
      var old = document.getElementById("image-error");
      if (old) old.remove();
      var url = URL.createObjectURL(file);
      preview.onload = function () { URL.revokeObjectURL(url); };
      preview.src = url;
      preview.hidden = false;
      zone.classList.add("has-image");
      hint.querySelector("strong").textContent = file.name;
    }

    input.addEventListener("change", function () { show(input.files && input.files[0]); });
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (e) { e.preventDefault(); zone.classList.add("dragging"); });
    });
    ["dragleave", "dragend", "drop"].forEach(function (name) {
      zone.addEventListener(name, function () { zone.classList.remove("dragging"); });
    });
    zone.addEventListener("drop", function (e) {
      e.preventDefault();
      var files = e.dataTransfer && e.dataTransfer.files;
      if (!files || !files.length) return;
      var transfer = new DataTransfer();  // put the dropped file into the real input, so the form sends it
      for (var i = 0; i < files.length; i++) transfer.items.add(files[i]);
      input.files = transfer.files;
      show(files[0]);
    });

    document.querySelectorAll("[data-fill]").forEach(function (chip) {
      chip.addEventListener("click", function () {
        var target = document.getElementById(chip.getAttribute("data-fill"));
        target.value = chip.getAttribute("data-value");
        target.dispatchEvent(new Event("input", { bubbles: true }));
        target.focus();
      });
    });

    // Once a field is edited, its error from the last submit no longer applies.
    document.querySelectorAll("#new-style input[aria-invalid]").forEach(function (field) {
      field.addEventListener("input", function () {
        field.removeAttribute("aria-invalid");
        var error = document.getElementById(field.id + "-error");
        if (error) error.remove();
      });
    });

    var form = document.getElementById("new-style");
    form.addEventListener("submit", function () {
      var button = document.getElementById("create");
      button.disabled = true;
      button.textContent = "Uploading…";
    });
  });
})();
