"use strict";
// Show why the last login failed (the server redirects with ?error=...).
const msg = { wrong: "Wrong password.", slow: "Too many attempts; wait a little and try again." };
const e = new URLSearchParams(location.search).get("error");
if (e && msg[e]) document.getElementById("error").textContent = msg[e];
