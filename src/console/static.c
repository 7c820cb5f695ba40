/* The one style sheet and the one script, compiled in: nothing is fetched from elsewhere, and
 * the Content-Security-Policy allows scripts from this origin only. */
#include <string.h>

#include "console/internal.h"

static const char css[] =
    "body{font-family:system-ui,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}"
    "header{display:flex;gap:1.5em;align-items:center;padding:.6em 1.2em;background:#16324f;"
    "color:#fff}header a{color:#cfe3ff;margin-right:1em;text-decoration:none}"
    "header .who{margin-left:auto;font-size:.85em}"
    "main{padding:1em 1.5em}table{border-collapse:collapse;background:#fff;width:100%}"
    "th,td{border-bottom:1px solid #dde;padding:.3em .6em;text-align:left;font-size:.9em}"
    "td.mono,.mono{font-family:ui-monospace,monospace;word-break:break-all}"
    ".cards{display:flex;gap:1em;flex-wrap:wrap}.card{background:#fff;padding:.8em 1.2em;"
    "border:1px solid #dde;border-radius:6px}.card b{font-size:1.6em;display:block}"
    ".chart .bar{fill:#2f6fb0}.chart text{font-size:10px}.chart .axis{fill:#667}"
    ".revoked{color:#b00020}.expired{color:#8a6d00}.valid{color:#1b7f3b}"
    ".error{color:#b00020;font-weight:bold}form.inline{display:inline}"
    "fieldset{background:#fff;border:1px solid #dde;margin:1em 0}"
    "pre{background:#fff;border:1px solid #dde;padding:.6em;overflow:auto}"
    ".secret{background:#fff8e1;border:1px solid #e0c060;padding:.6em}\n";

/* Forms marked data-confirm ask once more before they are sent. */
static const char js[] =
    "'use strict';\n"
    "document.addEventListener('submit', function (ev) {\n"
    "  var msg = ev.target.getAttribute('data-confirm');\n"
    "  if (msg && !window.confirm(msg)) ev.preventDefault();\n"
    "});\n";

void console_page_static(struct console_req *q, const char *name)
{
    if (strcmp(name, "console.css") == 0)
        console_send(q, 200, "text/css; charset=utf-8", css, sizeof(css) - 1, NULL);
    else if (strcmp(name, "console.js") == 0)
        console_send(q, 200, "text/javascript; charset=utf-8", js, sizeof(js) - 1, NULL);
    else
        console_fail(q, 404, "no such file");
}
