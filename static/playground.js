// Playground: picking a round in "Adapter of" sets the sampling controls (λA, λB, steps) to that round's own
// defaults (round 1 samples with λA 0, later rounds with 2), and the legend says whose defaults they are.
// Vanilla JS, no dependencies. Without it the controls keep the latest round's defaults; a person can still
// type any value.
(function () {
  "use strict";
  function ready(fn) {
    if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn);
  }
  ready(function () {
    var picker = document.getElementById("round_id");
    if (!picker) return;
    var names = ["adapter_guidance", "guidance", "steps"];
    picker.addEventListener("change", function () {
      var option = picker.options[picker.selectedIndex];
      names.forEach(function (name) {
        var input = document.getElementById(name);
        var value = option.getAttribute("data-" + name);
        if (input && value !== null) input.value = value;
      });
      var note = document.getElementById("sampling-defaults");
      if (note) {
        note.textContent = "(round " + option.getAttribute("data-number") + "'s defaults: λA " +
          option.getAttribute("data-adapter_guidance") + ", λB " + option.getAttribute("data-guidance") + ", " +
          option.getAttribute("data-steps") + " steps)";
      }
    });
  });
})();
