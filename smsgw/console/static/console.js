// Progressive enhancement of the console; every page works without this file.
// A <textarea data-sms-count> gets a live count of characters and SMS parts, computed exactly as
// smsgw/gsm.py does (the alphabets come from the page as JSON, rendered from gsm.py's own tables;
// the server turns the CR LF a browser sends into LF, as counted here):
// GSM-7 when every character is in the basic or extension table (extension characters take two
// septets and a part never splits one), else UCS-2 in UTF-16 units (a part never splits a pair);
// one SMS holds 160 septets or 70 units, a part of a longer text 153 or 67.
"use strict";
(function () {
  function measure(text, basic, extension) {
    var chars = Array.from(text), gsm = true, costs = [];
    for (var i = 0; i < chars.length; i++) {
      if (basic.indexOf(chars[i]) < 0 && extension.indexOf(chars[i]) < 0) { gsm = false; break; }
    }
    for (var j = 0; j < chars.length; j++) {
      if (gsm) costs.push(extension.indexOf(chars[j]) >= 0 ? 2 : 1);
      else costs.push(chars[j].codePointAt(0) > 0xFFFF ? 2 : 1);
    }
    var single = gsm ? 160 : 70, part = gsm ? 153 : 67, units = 0, parts = 1, used = 0;
    for (var k = 0; k < costs.length; k++) units += costs[k];
    if (units > single) {
      for (var m = 0; m < costs.length; m++) {
        if (used + costs[m] > part) { parts += 1; used = 0; }
        used += costs[m];
      }
    }
    return { encoding: gsm ? "GSM-7" : "UCS-2", units: units, parts: parts };
  }
  // gsm.fold: each character without its combining diacritical marks (U+0300-U+036F); đ Đ Ð -> d D D.
  function fold(text) {
    var out = "", chars = Array.from(text);
    for (var i = 0; i < chars.length; i++) {
      var c = chars[i];
      if (c === "đ") { out += "d"; continue; }
      if (c === "Đ" || c === "Ð") { out += "D"; continue; }
      if (/[\u0300-\u036f]/.test(c)) continue;
      var decomposed = c.normalize("NFD"), stripped = decomposed.replace(/[\u0300-\u036f]/g, "");
      out += stripped === decomposed ? c : stripped.normalize("NFC");
    }
    return out;
  }
  function isGsm(text, basic, extension) {
    var chars = Array.from(text);
    for (var i = 0; i < chars.length; i++) {
      if (basic.indexOf(chars[i]) < 0 && extension.indexOf(chars[i]) < 0) return false;
    }
    return true;
  }
  // wording.value with unicode off: kept when ASCII and GSM-7, else folded, any other character as "?".
  function folded(text, basic, extension) {
    if (/^[\x00-\x7f]*$/.test(text) && isGsm(text, basic, extension)) return text;
    return Array.from(fold(text)).map(function (c) { return isGsm(c, basic, extension) ? c : "?"; }).join("");
  }
  // The SMS an answer becomes (cli_questions.answer_message): its words joined by single spaces, in
  // the answer's template, the rating invitation added when the parts stay as many.
  function worded(area, basic, extension) {
    if (!area.hasAttribute("data-sms-prefix")) return area.value;
    var prefix = JSON.parse(area.getAttribute("data-sms-prefix"));
    var suffix = JSON.parse(area.getAttribute("data-sms-suffix"));
    var text = area.value.split(/\s+/).filter(Boolean).join(" ");
    if (area.getAttribute("data-sms-fold") === "1") text = folded(text, basic, extension);
    var plain = prefix + text, invited = plain + suffix;
    return measure(invited, basic, extension).parts === measure(plain, basic, extension).parts ? invited : plain;
  }
  function attach(area) {
    var basic = JSON.parse(area.getAttribute("data-gsm7-basic")).replace("\u001b", "");
    var extension = JSON.parse(area.getAttribute("data-gsm7-extension"));
    var out = document.getElementById(area.getAttribute("data-sms-count"));
    if (!out) return;
    function update() {
      var sent = worded(area, basic, extension), m = measure(sent, basic, extension);
      var typed = Array.from(area.value).length + " ký tự";
      out.textContent = (sent === area.value ? typed : typed + " · tin gửi đi " + Array.from(sent).length + " ký tự") +
        " · " + m.units + (m.encoding === "GSM-7" ? " septet" : " đơn vị UTF-16") + " · " + m.encoding + " · " + m.parts + " tin SMS";
      out.setAttribute("data-parts", String(m.parts));
      out.setAttribute("data-encoding", m.encoding);
      out.setAttribute("data-units", String(m.units));
    }
    area.addEventListener("input", update);
    update();
  }
  document.addEventListener("DOMContentLoaded", function () {
    var areas = document.querySelectorAll("textarea[data-sms-count]");
    for (var i = 0; i < areas.length; i++) attach(areas[i]);
    // A button data-fill="ID" data-text="..." puts its text in the textarea ID (an FAQ suggestion),
    // and its data-faq (the entry's id) in the hidden field ID-faq: an answer keeping that text
    // labels the question with the entry (console/questions.py).
    var fills = document.querySelectorAll("button[data-fill]");
    for (var j = 0; j < fills.length; j++) {
      fills[j].addEventListener("click", function (event) {
        var target = document.getElementById(event.currentTarget.getAttribute("data-fill"));
        if (!target) return;
        target.value = event.currentTarget.getAttribute("data-text");
        var entry = document.getElementById(target.id + "-faq");
        if (entry) entry.value = event.currentTarget.getAttribute("data-faq") || "";
        target.dispatchEvent(new Event("input"));
        target.focus();
      });
    }
  });
})();
