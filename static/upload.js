// New style form: drag-and-drop or file picker, every chosen file listed with a thumbnail, each checked at once
// by its content (a text file renamed .png is not an image, whatever its name says), the number and size limits
// said before anything is sent, and descriptor example chips. Vanilla JS, no dependencies; the form works
// without it (a plain file input, the server checks the same things).
(function () {
  "use strict";
  function ready(fn) {
    if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn);
  }

  // What a file's first bytes say it is (PNG, JPEG or WebP), or null: the browser's file.type comes from the name.
  function sniff(bytes) {
    var at = function (offset, list) {
      for (var i = 0; i < list.length; i++) if (bytes[offset + i] !== list[i]) return false;
      return true;
    };
    if (at(0, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return "PNG";
    if (at(0, [0xff, 0xd8, 0xff])) return "JPEG";
    if (at(0, [0x52, 0x49, 0x46, 0x46]) && at(8, [0x57, 0x45, 0x42, 0x50])) return "WebP";
    return null;
  }

  function megabytes(bytes) { return (bytes / (1024 * 1024)).toFixed(1) + " MB"; }

  ready(function () {
    var zone = document.getElementById("dropzone");
    var input = document.getElementById("image");
    var preview = document.getElementById("preview");
    var hint = document.getElementById("drop-hint");
    var list = document.getElementById("chosen-files");
    if (!zone || !input) return;
    var maxFiles = parseInt(input.getAttribute("data-max-files") || "0", 10);
    var maxBytes = parseInt(input.getAttribute("data-max-bytes") || "0", 10);
    var title = hint.querySelector("strong");
    var or = document.getElementById("drop-or");
    var idle = [title.textContent, or ? or.textContent : ""];
    var urls = [];
    var checking = 0;  // a newer choice makes the answers of an older one moot

    function showError(message) {
      var old = document.getElementById("image-client-error");
      if (old) old.remove();
      zone.classList.toggle("invalid", !!message);
      input.setAttribute("aria-invalid", message ? "true" : "false");
      if (!message) return;
      var p = document.createElement("p");
      p.className = "field-error";
      p.id = "image-client-error";
      p.setAttribute("role", "alert");
      p.setAttribute("tabindex", "-1");
      p.textContent = message;
      var help = document.getElementById("image-help");
      help.parentNode.insertBefore(p, help.nextSibling);
    }

    function reset() {
      urls.forEach(function (url) { URL.revokeObjectURL(url); });
      urls = [];
      list.textContent = "";
      list.hidden = true;
      preview.hidden = true;
      preview.removeAttribute("src");
      zone.classList.remove("has-image");
      title.textContent = idle[0];
      if (or) or.textContent = idle[1];
    }

    // Each file: its first bytes, then (if they are an image's) a decode; resolves to an error message or "".
    function check(file) {
      if (maxBytes && file.size > maxBytes) {
        return Promise.resolve(file.name + " is " + megabytes(file.size) + "; an image may be at most " +
          megabytes(maxBytes) + ".");
      }
      return file.slice(0, 12).arrayBuffer().then(function (head) {
        if (!sniff(new Uint8Array(head))) return file.name + " is not a PNG, JPEG or WebP image (its content is not " +
          "a picture, whatever its name says); choose another file.";
        return "";
      }, function () { return file.name + " could not be read; choose another file."; });
    }

    function decodes(url) {
      return new Promise(function (resolve) {
        var probe = new Image();
        probe.onload = function () { resolve(probe.naturalWidth > 0); };
        probe.onerror = function () { resolve(false); };
        probe.src = url;
      });
    }

    function show(files) {
      var mine = ++checking;
      reset();
      showError("");
      var old = document.getElementById("image-error");
      if (old) old.remove();
      if (!files || !files.length) return;
      var chosen = Array.prototype.slice.call(files);
      chosen.forEach(function (file) {
        var li = document.createElement("li");
        var url = URL.createObjectURL(file);
        urls.push(url);
        var thumb = document.createElement("img");
        thumb.alt = "";
        thumb.width = 40;
        thumb.height = 40;
        var name = document.createElement("span");
        name.className = "chosen-name";
        name.textContent = file.name;
        li.appendChild(thumb);
        li.appendChild(name);
        li.setAttribute("data-url", url);
        list.appendChild(li);
      });
      list.hidden = false;
      title.textContent = chosen.length === 1 ? chosen[0].name : chosen.length + " images";
      if (or) or.textContent = " · drop or choose again";
      Promise.all(chosen.map(function (file, i) {
        return check(file).then(function (problem) {
          var url = urls[i];
          if (problem) return problem;
          return decodes(url).then(function (ok) {
            return ok ? "" : file.name + " is damaged: it could not be drawn as an image; choose another file.";
          });
        });
      })).then(function (problems) {
        if (mine !== checking) return;
        var items = list.querySelectorAll("li");
        var firstGood = -1;
        problems.forEach(function (problem, i) {
          items[i].classList.toggle("bad", !!problem);
          if (problem) items[i].title = problem;
          else {
            items[i].querySelector("img").src = urls[i];
            if (firstGood < 0) firstGood = i;
          }
        });
        var messages = problems.filter(function (p) { return p; });
        if (maxFiles && chosen.length > maxFiles) {
          messages.unshift(chosen.length + " images chosen; a style takes at most " + maxFiles + ".");
        }
        showError(messages.join(" "));
        if (firstGood >= 0) {
          preview.src = urls[firstGood];
          preview.hidden = false;
          zone.classList.add("has-image");
        }
      });
    }

    input.addEventListener("change", function () { show(input.files); });
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
      var transfer = new DataTransfer();  // put the dropped files into the real input, so the form sends them
      for (var i = 0; i < files.length; i++) transfer.items.add(files[i]);
      input.files = transfer.files;
      show(input.files);
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
      if (field === input) return;
      field.addEventListener("input", function () {
        field.removeAttribute("aria-invalid");
        var error = document.getElementById(field.id + "-error");
        if (error) error.remove();
      });
    });

    var form = document.getElementById("new-style");
    form.addEventListener("submit", function (e) {
      var problem = document.getElementById("image-client-error");
      if (problem) {  // the chosen files are refused here: nothing is sent, the reason has the focus
        e.preventDefault();
        problem.focus();
        return;
      }
      var button = document.getElementById("create");
      button.disabled = true;
      button.textContent = "Uploading…";
    });
  });
})();
