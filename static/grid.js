// The rating grid, built for rating 64 images with one key each (the help is on the page, behind "?"):
//   ← → ↑ ↓ or j / k   move between candidate cards (one Tab stop per grid: a roving tabindex)
//   u or +             thumbs up (also selects the image for the next round), then on to the next image
//   d or -             thumbs down (also unselects it), then on
//   s or space         select / unselect, then on
//   Enter or a click   the enlarged view (a <dialog>) beside the reference, where the same keys work
//   ?                  show or hide the shortcut help (a dialog in the middle of the screen)
// A dialog (the enlarged view, the help) also closes on a click on its backdrop. The style page's skip link
// "Skip to the images" puts the focus on the grid's card, so rating starts after two Tabs and Enter.
// The card buttons are htmx buttons: a key "clicks" the card's button and htmx swaps the card the server
// sends back. The image size slider sets one CSS variable, remembered in localStorage.
(function () {
  "use strict";
  var SIZE_KEY = "styledrop.gridSize";
  var focusId = null;   // the card the keyboard is on
  var viewerId = null;  // the card the enlarged view shows

  function cards() {
    return Array.prototype.filter.call(document.querySelectorAll(".card[tabindex]"), function (el) {
      return el.offsetParent !== null;  // visible only (skips cards of collapsed older rounds)
    });
  }

  // One Tab stop per grid: the card the keyboard was last on (else the first) has tabindex 0.
  function rove(card) {
    var wrap = card.closest(".grid-wrap") || document;
    Array.prototype.forEach.call(wrap.querySelectorAll(".card[tabindex]"), function (el) {
      el.setAttribute("tabindex", el === card ? "0" : "-1");
    });
  }

  function settleTabStops() {
    Array.prototype.forEach.call(document.querySelectorAll(".grid-wrap"), function (wrap) {
      var all = wrap.querySelectorAll(".card[tabindex]");
      if (!all.length || wrap.querySelector('.card[tabindex="0"]')) return;
      var mine = focusId && document.getElementById(focusId);
      rove(mine && wrap.contains(mine) ? mine : all[0]);
    });
  }

  function focusCard(card) {
    if (!card) return;
    rove(card);
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

  function actionFor(key) {
    if (key === "u" || key === "+") return "up";
    if (key === "d" || key === "-") return "down";
    if (key === "s" || key === " ") return "select";
    return null;
  }

  // Send the card's button's request for the action; true if there was one. Through htmx.ajax rather than
  // a click: a card htmx has just swapped in is not wired up for a few milliseconds, and a fast key must not
  // be lost. The grid's hx-sync queues the requests, so the counts they bring back arrive in order.
  function act(card, action) {
    var button = card && card.querySelector('[data-action="' + action + '"]');
    if (!button || button.disabled) return false;
    var url = button.getAttribute("hx-put") || button.getAttribute("hx-post");
    if (window.htmx && url) {
      window.htmx.ajax(button.hasAttribute("hx-put") ? "PUT" : "POST", url,
        { source: button, target: "#" + card.id, swap: "outerHTML" });
    } else {
      button.click();
    }
    return true;
  }

  function neighbour(card, step) {
    var all = cards();
    var index = all.indexOf(card);
    if (index < 0) return null;
    return all[Math.min(Math.max(index + step, 0), all.length - 1)];
  }

  // ---- the enlarged view ----------------------------------------------------------------------------------

  var viewer = document.getElementById("viewer");

  function viewerCard() { return viewerId ? document.getElementById(viewerId) : null; }

  function describe(card) {
    var parts = [];
    if (card.classList.contains("liked")) parts.push("thumbs up");
    if (card.classList.contains("disliked")) parts.push("thumbs down");
    if (card.classList.contains("selected")) parts.push("selected");
    return parts.length ? parts.join(", ") : "not rated";
  }

  function paintViewer() {
    var card = viewerCard();
    if (!viewer || !card) return;
    var img = card.querySelector("img");
    var all = cards();
    document.getElementById("viewer-img").src = img.src;
    document.getElementById("viewer-img").alt = img.alt;
    document.getElementById("viewer-title").textContent =
      "Image " + (all.indexOf(card) + 1) + " of " + all.length;
    document.getElementById("viewer-caption").textContent =
      (card.getAttribute("data-prompt") || "") + " · seed " + (card.getAttribute("data-seed") || "");
    document.getElementById("viewer-state").textContent = describe(card);
    [1, -1].forEach(function (step) {  // the neighbours' images fetched ahead, as a culling tool does
      var near = neighbour(card, step);
      var src = near && near !== card && near.querySelector("img").getAttribute("src");
      if (src) new Image().src = src;
    });
    ["up", "down", "select"].forEach(function (action) {
      var source = card.querySelector('[data-action="' + action + '"]');
      var target = viewer.querySelector('[data-viewer="' + action + '"]');
      if (source && target) target.setAttribute("aria-pressed", source.getAttribute("aria-pressed") || "false");
    });
  }

  function openViewer(card) {
    if (!viewer || !card) return;
    viewerId = card.id;
    focusId = card.id;
    paintViewer();
    if (!viewer.open) viewer.showModal();
  }

  function viewerMove(step) {
    var next = neighbour(viewerCard(), step);
    if (next) { viewerId = next.id; focusId = next.id; paintViewer(); }
  }

  // A click on a modal dialog's backdrop reaches the dialog element itself, outside its box: close it.
  function closeOnBackdrop(dialog, e) {
    if (e.target !== dialog) return false;
    var box = dialog.getBoundingClientRect();
    var inside = e.clientX >= box.left && e.clientX <= box.right && e.clientY >= box.top && e.clientY <= box.bottom;
    if (!inside) dialog.close();
    return !inside;
  }

  if (viewer) {
    viewer.addEventListener("click", function (e) {
      if (closeOnBackdrop(viewer, e)) return;
      var button = e.target.closest ? e.target.closest("[data-viewer]") : null;
      if (!button) return;
      var what = button.getAttribute("data-viewer");
      if (what === "close") viewer.close();
      else if (what === "prev") viewerMove(-1);
      else if (what === "next") viewerMove(1);
      else if (act(viewerCard(), what)) viewerMove(1);
    });
    viewer.addEventListener("close", function () {
      var card = viewerCard();
      viewerId = null;
      if (card) focusCard(card);
    });
  }

  // ---- keys ---------------------------------------------------------------------------------------------

  var help = document.getElementById("shortcuts");

  function toggleHelp() {
    if (!help) return;
    if (help.open) help.close(); else help.showModal();
  }

  if (help) {
    help.addEventListener("click", function (e) {
      if (closeOnBackdrop(help, e)) return;
      if (e.target.closest && e.target.closest('[data-help="close"]')) help.close();
    });
  }

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    var t = e.target;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    var key = e.key;
    if (help && help.open) {  // the help is read, not typed into: ? closes it (and Esc, as any dialog)
      if (key === "?") { e.preventDefault(); help.close(); }
      return;
    }
    if (viewer && viewer.open) {
      var step = (key === "ArrowRight" || key === "j" || key === "ArrowDown") ? 1
        : (key === "ArrowLeft" || key === "k" || key === "ArrowUp") ? -1 : 0;
      var inViewer = actionFor(key);
      if (step) { e.preventDefault(); viewerMove(step); }
      else if (inViewer && !(key === " " && t && t.tagName === "BUTTON")) {
        e.preventDefault();
        if (act(viewerCard(), inViewer)) viewerMove(1);
      }
      return;
    }
    if (key === "?") { e.preventDefault(); toggleHelp(); return; }
    var all = cards();
    if (!all.length) return;
    var current = t && t.closest ? t.closest(".card[tabindex]") : null;
    if (!current && (!t || t === document.body) && focusId) {  // the focused card was just swapped out
      current = document.getElementById(focusId);
      if (current && all.indexOf(current) < 0) current = null;
    }
    var index = current ? all.indexOf(current) : -1;
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
    if (key === "Enter" && t === current) { e.preventDefault(); openViewer(current); return; }
    var action = actionFor(key);
    if (action && act(current, action)) {
      e.preventDefault();
      focusCard(neighbour(current, 1) || current);  // one key per image: on to the next
    }
  });

  document.addEventListener("click", function (e) {
    var target = e.target && e.target.closest ? e.target : null;
    if (!target) return;
    var opener = target.closest('[data-open="viewer"]');
    var card = opener && opener.closest(".card[tabindex]");
    if (card) { openViewer(card); return; }
    if (target.closest('[data-help="open"]')) { toggleHelp(); return; }
    var dismiss = target.closest('[data-dismiss="notice"]');
    if (dismiss) {
      var notice = dismiss.closest(".grid-notice");
      if (notice) notice.remove();
      return;
    }
    var skip = target.closest('[data-skip="grid"]');
    if (skip) {  // to the grid's own card (its one Tab stop), not just the top of the grid
      var wrap = document.querySelector(skip.getAttribute("href"));
      var first = wrap && (wrap.querySelector('.card[tabindex="0"]') || wrap.querySelector(".card[tabindex]"));
      if (first) { e.preventDefault(); focusCard(first); }
    }
  });

  document.addEventListener("focusin", function (e) {
    var card = e.target && e.target.closest ? e.target.closest(".card[tabindex]") : null;
    if (card) { focusId = card.id; rove(card); }
  });

  // ---- image size --------------------------------------------------------------------------------------

  function storedSize() {
    try { return window.localStorage.getItem(SIZE_KEY); } catch (err) { return null; }
  }

  function applySize(value) {
    if (!value) return;
    document.documentElement.style.setProperty("--card-min", value + "px");
    Array.prototype.forEach.call(document.querySelectorAll("input.grid-size"), function (input) {
      if (input.value !== String(value)) input.value = value;
    });
  }

  document.addEventListener("input", function (e) {
    if (!e.target.classList || !e.target.classList.contains("grid-size")) return;
    applySize(e.target.value);
    try { window.localStorage.setItem(SIZE_KEY, e.target.value); } catch (err) { /* private mode: not kept */ }
  });

  // After htmx swapped a card (a vote) or a grid: tab stops, size, the enlarged view, the keyboard focus
  // (at once, on afterSwap, so a key pressed right after a vote reaches the card).
  document.addEventListener("htmx:afterSwap", function () {
    settleTabStops();
    applySize(storedSize());
    if (viewer && viewer.open) paintViewer();
    if (!focusId || (viewer && viewer.open)) return;
    var active = document.activeElement;
    if (active && active !== document.body && active.closest && active.closest(".card")) return;
    var card = document.getElementById(focusId);
    if (card && card.getAttribute("tabindex") !== null) { rove(card); card.focus({ preventScroll: true }); }
  });

  settleTabStops();
  applySize(storedSize());
})();
