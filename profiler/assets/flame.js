// stapdoctor flame graph interaction: zoom, search, details. Written for this project.
// Frame names are only ever read and written through textContent, never parsed as markup.
(function () {
  "use strict";
  var svg = document.documentElement;
  var total = Number(svg.getAttribute("data-total")) || 0;
  var width = Number(svg.getAttribute("data-width"));
  var xpad = Number(svg.getAttribute("data-xpad"));
  var fontSize = Number(svg.getAttribute("data-fs"));
  var charW = Number(svg.getAttribute("data-cw"));
  var unit = svg.getAttribute("data-unit") || "samples";
  var diff = svg.getAttribute("data-diff") === "1";
  var plotW = width - 2 * xpad;
  var details = document.getElementById("details");
  var matchedEl = document.getElementById("matched");
  var unzoomBtn = document.getElementById("unzoom");
  var searchBtn = document.getElementById("search");
  var icBtn = document.getElementById("ignorecase");
  var container = document.getElementById("frames");
  var groups = container ? Array.prototype.slice.call(container.getElementsByTagName("g")) : [];
  var n = groups.length;
  var fx = new Array(n), fs = new Array(n), fd = new Array(n), names = new Array(n);
  var rects = new Array(n), texts = new Array(n), infos = new Array(n);
  var index = new Map();
  var zoomed = -1, searchTerm = null, ignoreCase = false;

  for (var i = 0; i < n; i++) {
    var g = groups[i];
    fx[i] = Number(g.getAttribute("data-x"));
    fs[i] = Number(g.getAttribute("data-s"));
    fd[i] = Number(g.getAttribute("data-d"));
    var t = g.getElementsByTagName("title")[0];
    var info = t ? t.textContent : "";
    var cut = info.lastIndexOf(" (");
    names[i] = cut >= 0 ? info.substring(0, cut) : info;
    infos[i] = info;
    rects[i] = g.getElementsByTagName("rect")[0];
    texts[i] = g.getElementsByTagName("text")[0];
    index.set(g, i);
  }

  function fmt(v) { return v.toLocaleString("en-US"); }
  function pct(v) { return total ? (100 * v / total).toFixed(2) : "0.00"; }

  function label(name, w) {
    var room = Math.floor((w - 6) / (fontSize * charW));
    if (room < 3) return "";
    if (name.length <= room) return name;
    return name.substring(0, room - 2) + "..";
  }

  // what each frame shows now, so zooming touches only the frames that change
  var shownX = new Array(n), shownW = new Array(n), shownLabel = new Array(n), visible = new Array(n);
  for (var v = 0; v < n; v++) {
    shownX[v] = Number(rects[v].getAttribute("x"));
    shownW[v] = Number(rects[v].getAttribute("width"));
    shownLabel[v] = texts[v].textContent;
    visible[v] = true;
  }

  function show(i, on) {
    if (visible[i] !== on) {
      visible[i] = on;
      groups[i].style.display = on ? "" : "none";
    }
  }

  function place(i, x, w) {
    show(i, true);
    if (Math.abs(shownX[i] - x) > 0.004 || Math.abs(shownW[i] - w) > 0.004) {
      shownX[i] = x;
      shownW[i] = w;
      rects[i].setAttribute("x", x.toFixed(2));
      rects[i].setAttribute("width", w.toFixed(2));
      texts[i].setAttribute("x", (x + 3).toFixed(2));
    }
    var l = label(names[i], w);
    if (l !== shownLabel[i]) {
      shownLabel[i] = l;
      texts[i].textContent = l;
    }
  }

  function setParent(i, on) {
    if (on) groups[i].classList.add("parent");
    else if (groups[i].classList.length) groups[i].classList.remove("parent");
  }

  function frameOf(el) {
    while (el && el !== container) {
      if (index.has(el)) return index.get(el);
      el = el.parentNode;
    }
    return -1;
  }

  function zoom(z) {
    if (z < 0 || fd[z] === 0) { unzoom(); return; }
    zoomed = z;
    var zx = fx[z], zs = fs[z], zd = fd[z], k = plotW / zs;
    for (var i = 0; i < n; i++) {
      var x0 = fx[i], x1 = fx[i] + fs[i];
      if (fd[i] < zd) {
        if (x0 <= zx && x1 >= zx + zs) {
          setParent(i, true);
          place(i, xpad, plotW);
        } else {
          show(i, false);
        }
      } else if (x0 >= zx && x1 <= zx + zs) {
        setParent(i, false);
        place(i, xpad + (x0 - zx) * k, fs[i] * k);
      } else {
        show(i, false);
      }
    }
    unzoomBtn.classList.remove("hide");
    svg.setAttribute("data-zoomed", names[z]);
  }

  function unzoom() {
    zoomed = -1;
    var k = total ? plotW / total : 0;
    for (var i = 0; i < n; i++) {
      setParent(i, false);
      place(i, xpad + fx[i] * k, fs[i] * k);
    }
    unzoomBtn.classList.add("hide");
    svg.removeAttribute("data-zoomed");
  }

  function clearSearch() {
    searchTerm = null;
    for (var i = 0; i < n; i++) groups[i].classList.remove("match");
    matchedEl.textContent = " ";
    searchBtn.textContent = "Search";
    svg.removeAttribute("data-matched");
  }

  function search(term) {
    var re;
    try {
      re = new RegExp(term, ignoreCase ? "i" : "");
    } catch (e) {
      clearSearch();
      matchedEl.textContent = "Invalid regular expression";
      return;
    }
    searchTerm = term;
    var spans = [];
    for (var i = 0; i < n; i++) {
      if (fd[i] > 0 && re.test(names[i])) {
        groups[i].classList.add("match");
        spans.push([fx[i], fx[i] + fs[i]]);
      } else {
        groups[i].classList.remove("match");
      }
    }
    // union of matched ranges: nested matches (recursion) are counted once
    spans.sort(function (a, b) { return a[0] - b[0] || b[1] - a[1]; });
    var covered = 0, end = -1;
    for (var j = 0; j < spans.length; j++) {
      var s0 = spans[j][0], s1 = spans[j][1];
      if (s0 >= end) { covered += s1 - s0; end = s1; }
      else if (s1 > end) { covered += s1 - end; end = s1; }
    }
    var p = pct(covered);
    matchedEl.textContent = "Matched: " + p + "%";
    svg.setAttribute("data-matched", p);
    searchBtn.textContent = "Reset Search";
  }

  function askSearch() {
    var term = window.prompt("Search frames (regular expression)", searchTerm || "");
    if (term === null) return;
    if (term === "") { clearSearch(); return; }
    search(term);
  }

  container && container.addEventListener("mouseover", function (ev) {
    var i = frameOf(ev.target);
    if (i < 0) return;
    // a differential graph's title carries both counts and the change: show it whole
    details.textContent = "Function: " + (diff ? infos[i] : names[i] + " (" + fmt(fs[i]) + " " + unit + ", " + pct(fs[i]) + "%)");
  });
  container && container.addEventListener("mouseout", function (ev) {
    if (frameOf(ev.target) >= 0) details.textContent = " ";
  });
  container && container.addEventListener("click", function (ev) {
    var i = frameOf(ev.target);
    if (i >= 0) zoom(i);
  });
  unzoomBtn.addEventListener("click", unzoom);
  searchBtn.addEventListener("click", function () {
    if (searchTerm !== null) clearSearch(); else askSearch();
  });
  icBtn.addEventListener("click", function () {
    ignoreCase = !ignoreCase;
    icBtn.classList.toggle("on", ignoreCase);
    if (searchTerm !== null) search(searchTerm);
  });
  window.addEventListener("keydown", function (ev) {
    if ((ev.ctrlKey || ev.metaKey) && (ev.key === "f" || ev.key === "F") || ev.key === "F3") {
      ev.preventDefault();
      askSearch();
    } else if (ev.key === "Escape") {
      clearSearch();
    } else if ((ev.ctrlKey || ev.metaKey) && (ev.key === "i" || ev.key === "I")) {
      ev.preventDefault();
      icBtn.dispatchEvent(new MouseEvent("click"));
    }
  });
  // programmatic access (used by tests and by anyone embedding the SVG)
  window.stapdoctorFlame = { zoom: zoom, unzoom: unzoom, search: search, clearSearch: clearSearch, count: n };
})();
