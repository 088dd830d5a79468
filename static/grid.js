// Rating grid keyboard shortcuts (documented on the page next to the grid):
//   ← → ↑ ↓ or j / k   move the focus between candidate cards
//   u or +             thumbs up (also selects the image for the next round)
//   d or -             thumbs down (also unselects it)
//   s or space         select / unselect
// The card buttons are htmx buttons; a key "clicks" the focused card's button, and the focus comes back to
// the same card after htmx swaps it in.
(function () {
  "use strict";
  var focusId = null;

  function cards() {
    return Array.prototype.filter.call(document.querySelectorAll(".card[tabindex]"), function (el) {
      return el.offsetParent !== null;  // visible only (skips cards of collapsed older rounds)
    });
  }

  function focusCard(card) {
    if (!card) return;
    card.focus();
    focusId = card.id;
    card.scrollIntoView({ block: "nearest" });
  }

  function vertical(all, current, direction) {
    var box = current.getBoundingClientRect();
    var cx = box.left + box.width / 2;
    var best = null, bestScore = Infinity;
    all.forEach(function (el) {
      if (el === current) return;
      var b = el.getBoundingClientRect();
      var dy = direction > 0 ? b.top - box.bottom : box.top - b.bottom;
      if (dy < -2) return;
      var score = dy * 4 + Math.abs(b.left + b.width / 2 - cx);
      if (score < bestScore) { bestScore = score; best = el; }
    });
    return best;
  }

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    var t = e.target;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    var all = cards();
    if (!all.length) return;
    var current = t && t.closest ? t.closest(".card[tabindex]") : null;
    var index = current ? all.indexOf(current) : -1;
    var key = e.key;
    var next = null;
    if (key === "ArrowRight" || key === "j") next = all[Math.min(index + 1, all.length - 1)];
    else if (key === "ArrowLeft" || key === "k") next = all[Math.max(index - 1, 0)];
    else if (key === "ArrowDown") next = current ? vertical(all, current, 1) : all[0];
    else if (key === "ArrowUp") next = current ? vertical(all, current, -1) : all[0];
    if (next !== null) {
      e.preventDefault();
      focusCard(next || current);
      return;
    }
    if (!current) return;
    var action = null;
    if (key === "u" || key === "+") action = "up";
    else if (key === "d" || key === "-") action = "down";
    else if (key === "s" || key === " ") action = "select";
    if (!action) return;
    var button = current.querySelector('[data-action="' + action + '"]');
    if (button && !button.disabled) {
      e.preventDefault();
      focusId = current.id;
      button.click();
    }
  });

  document.addEventListener("focusin", function (e) {
    var card = e.target && e.target.closest ? e.target.closest(".card[tabindex]") : null;
    if (card) focusId = card.id;
  });

  // After htmx replaced a card (a vote), keep the keyboard focus on it.
  document.addEventListener("htmx:afterSettle", function () {
    if (!focusId) return;
    var active = document.activeElement;
    if (active && active !== document.body && active.closest && active.closest(".card")) return;
    var card = document.getElementById(focusId);
    if (card && card.getAttribute("tabindex") !== null) card.focus({ preventScroll: true });
  });
})();
