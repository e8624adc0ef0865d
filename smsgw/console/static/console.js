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
  function attach(area) {
    var basic = JSON.parse(area.getAttribute("data-gsm7-basic")).replace("\u001b", "");
    var extension = JSON.parse(area.getAttribute("data-gsm7-extension"));
    var out = document.getElementById(area.getAttribute("data-sms-count"));
    if (!out) return;
    function update() {
      var m = measure(area.value, basic, extension);
      out.textContent = Array.from(area.value).length + " ký tự · " + m.units + (m.encoding === "GSM-7" ? " septet" : " đơn vị UTF-16") +
        " · " + m.encoding + " · " + m.parts + " tin SMS";
      out.setAttribute("data-parts", String(m.parts));
      out.setAttribute("data-encoding", m.encoding);
    }
    area.addEventListener("input", update);
    update();
  }
  document.addEventListener("DOMContentLoaded", function () {
    var areas = document.querySelectorAll("textarea[data-sms-count]");
    for (var i = 0; i < areas.length; i++) attach(areas[i]);
  });
})();
