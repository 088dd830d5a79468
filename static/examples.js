// New style form, "Try an example": choosing an example fills the name, content and descriptor from it, shows its
// picture in the drop zone and clears any chosen file (the server reads the example's file); choosing a file goes
// back to "My own picture". Vanilla JS; without it the form still works (the server fills empty fields from the
// chosen example). The examples list is replaced by htmx when the base model changes, so events are delegated.
(function () {
  "use strict";
  function ready(fn) {
    if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn);
  }

  ready(function () {
    var form = document.getElementById("new-style");
    var input = document.getElementById("image");
    if (!form || !input) return;

    function setField(id, value) {
      var field = document.getElementById(id);
      if (field && value) field.value = value;
    }

    function showExample(radio) {
      var zone = document.getElementById("dropzone");
      var preview = document.getElementById("preview");
      if (!zone || !preview) return;
      if (radio && radio.value) {
        preview.src = radio.getAttribute("data-image");
        preview.hidden = false;
        zone.classList.add("has-image");
        zone.classList.add("has-example");
      } else if (zone.classList.contains("has-example")) {
        preview.hidden = true;
        preview.removeAttribute("src");
        zone.classList.remove("has-image");
        zone.classList.remove("has-example");
      }
    }

    form.addEventListener("change", function (event) {
      var target = event.target;
      if (target.name === "example" && target.checked) {
        if (target.value) {
          setField("name", target.getAttribute("data-name"));
          setField("content", target.getAttribute("data-content"));
          setField("descriptor", target.getAttribute("data-descriptor"));
          if (input.value) {
            input.value = "";
            input.dispatchEvent(new Event("change", {bubbles: true}));
          }
        }
        showExample(target);
      } else if (target === input && input.files && input.files.length) {
        var own = form.querySelector('input[name="example"][value=""]');
        if (own) own.checked = true;
        var zone = document.getElementById("dropzone");
        if (zone) zone.classList.remove("has-example");
      }
    });

    showExample(form.querySelector('input[name="example"]:checked'));
    // Another base model's examples came in (htmx): "My own picture" is chosen again, so no example is shown.
    document.body.addEventListener("htmx:afterSettle", function (event) {
      if (event.target && event.target.id === "examples") {
        showExample(form.querySelector('input[name="example"]:checked'));
      }
    });
  });
})();
