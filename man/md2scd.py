#!/usr/bin/env python3
"""Turn the Markdown reference pages (docs/commands/*.md, docs/config.md) into scdoc sources,
so each man page is written once, in the docs, and cannot drift from them.

    md2scd.py PAGE SRCDIR OUT.scd        e.g. md2scd.py twoway-gateway.1 . twoway-gateway.1.scd

PAGES below says which Markdown files make which page. The first file's title line
("# twoway gateway — what it does") gives NAME; a fenced block right after it gives
SYNOPSIS (else the page's synopsis below); its text up to the first "##" is DESCRIPTION;
every "## Heading" becomes a section, "### Heading" a subsection. Further files add their
own title as a section. Inline Markdown becomes scdoc: `code` and **bold** are bold, links
keep their text, tables become one list item per row (first column bold), and every
character scdoc would read as markup is escaped. Fenced blocks stay literal.
"""

import re
import sys
from pathlib import Path

# page: (Markdown sources, one-line summary for NAME when the title has none, synopsis when
# the first source has no usage block)
PAGES = {
    "twoway-ca.1": (["docs/commands/ca.md", "docs/commands/ca-migrate.md"], None,
                    "twoway ca init|issue|list|show|revoke|crl|export|token|pending|approve|"
                    "reject|migrate [options]"),
    "twoway-ca-serve.1": (["docs/commands/ca-serve.md"], None,
                          "twoway ca serve [--dir D] [--listen ADDR:PORT] [options]\n"
                          "twoway ca token NAME [--ttl DURATION] [options]"),
    "twoway-gateway.1": (["docs/commands/gateway.md"],
                         "mTLS-terminating reverse proxy for TCP and HTTP services", None),
    "twoway-tunnel.1": (["docs/commands/tunnel.md"], None,
                        "twoway tunnel --listen ADDR:PORT --target HOST:PORT --cert F --key F "
                        "--ca F [options]\ntwoway tunnel --config FILE\n"
                        "twoway tunnel --check [CONFIG | flags]"),
    "twoway-enroll.1": (["docs/commands/enroll.md"], None, None),
    "twoway-renew.1": (["docs/commands/renew.md"], None, None),
    "twoway-doctor.1": (["docs/commands/doctor.md"], None,
                        "twoway doctor HOST:PORT [--cert F --key F] [--ca F] [options]\n"
                        "twoway doctor --cert F [--key F] [--ca F]"),
    "twoway-bench.1": (["docs/commands/bench.md"],
                       "mTLS load generator: handshakes per second, latency, throughput",
                       "twoway bench HOST:PORT --cert F --key F --ca F [options]"),
    "twoway-demo.1": (["docs/commands/demo.md"], None, None),
    "twoway.conf.5": (["docs/config.md"],
                      "configuration file of twoway gateway and twoway tunnel",
                      "/etc/twoway/NAME.conf"),
}

SEE_ALSO = ["twoway(1)", "twoway-ca(1)", "twoway-ca-serve(1)", "twoway-gateway(1)",
            "twoway-tunnel(1)", "twoway-enroll(1)", "twoway-renew(1)", "twoway-doctor(1)",
            "twoway-bench(1)", "twoway-demo(1)", "twoway.conf(5)"]

MARKUP = re.compile(r"([\\*_])")


def escape(text):
    """Plain text: every backslash, asterisk and underscore literal."""
    return MARKUP.sub(r"\\\1", text)


def heading(text, upper=True):
    """scdoc copies headings as they are (no escapes): drop the Markdown marks instead.
    Sections are upper case, as in every man page; subsections (config keys) keep theirs."""
    text = re.sub(r"[`*]", "", text).strip()
    return text.upper() if upper else text


INLINE = re.compile(r"`([^`]+)`|\*\*([^*]+)\*\*|\[([^\]]+)\]\(([^)]+)\)"
                    r"|(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])")


def inline(text):
    """One line of Markdown prose to scdoc."""
    out, pos = [], 0
    for m in INLINE.finditer(text):
        out.append(escape(text[pos:m.start()]))
        if m.group(1) is not None:
            out.append("*" + escape(m.group(1)) + "*")
        elif m.group(2) is not None:
            out.append("*" + inline(m.group(2)).replace("*", "") + "*")
        elif m.group(5) is not None:  # *emphasis*: underlined, as man pages do
            out.append("_" + escape(m.group(5)) + "_")
        else:
            out.append(inline(m.group(3)))
        pos = m.end()
    out.append(escape(text[pos:]))
    return "".join(out)


def table_row(line):
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    return cells


def convert_body(lines, out):
    """Markdown lines (after the title) to scdoc lines appended to out. Prose lines are
    joined into one line per paragraph or list item first, as `code` may span a break."""
    pending = []  # [prefix, text] of the paragraph or list item being read

    def flush():
        if pending:
            prefix, text = pending.pop()
            body = inline(text)
            # At the start of a line scdoc reads these as a comment, a list, a table
            if not prefix and body[:1] in (";", "-", ".", "|", ":", "["):
                body = "\\" + body
            out.append(prefix + body)

    i, in_fence = 0, False
    while i < len(lines):
        line = lines[i].rstrip("\n")
        stripped = line.strip()
        if line.startswith("```"):
            flush()
            in_fence = not in_fence
            out.append("```")
        elif in_fence:
            out.append(line.replace("\\", "\\\\").replace("\t", "    "))
        elif not stripped or re.fullmatch(r"-{3,}|\*{3,}", stripped):
            flush()  # a Markdown rule too: sections already separate the page
            out.append("")
        elif line.startswith("#"):
            flush()
            level = len(line) - len(line.lstrip("#"))
            out += ["", "#" * max(1, level - 1) + " " + heading(line.lstrip("#"), level <= 2), ""]
        elif line.startswith("|"):
            flush()
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(table_row(lines[i]))
                i += 1
            header, body = rows[0], rows[2:]
            out += ["", inline(" — ".join(h for h in header if h)) + ":", ""]
            for r in body:
                first = inline(r[0])
                first = first if first.startswith("*") else "*" + first + "*"
                rest = "; ".join(inline(c) for c in r[1:] if c)
                out.append(f"- {first}{': ' + rest if rest else ''}")
            out.append("")
            continue
        elif re.match(r"^\d+\. ", line):
            flush()
            pending.append([". ", re.sub(r"^\d+\. ", "", line)])
        elif line.startswith(("- ", "* ")):
            flush()
            pending.append(["- ", line[2:]])
        elif pending:
            pending[-1][1] += " " + stripped
        else:
            pending.append(["", stripped])
        i += 1
    flush()


def title_parts(line):
    """'# twoway ca serve / ca token — the CA as a network service' -> (name, summary)."""
    title = line.lstrip("#").strip()
    if " — " in title:
        name, summary = title.split(" — ", 1)
        return name.strip(), summary.strip()
    return title, None


def page(name, srcdir):
    sources, summary, synopsis = PAGES[name]
    base, section = name.rsplit(".", 1)
    out = [f'{base}({section}) "twoway" "twoway manual"', "", "# NAME", ""]
    first = (Path(srcdir) / sources[0]).read_text().splitlines()
    _, title_summary = title_parts(first[0])
    out.append(f"{escape(base)} - {inline(title_summary or summary)}")
    body = first[1:]
    while body and not body[0].strip():
        body = body[1:]
    out += ["", "# SYNOPSIS", ""]
    if body and body[0].startswith("```"):
        end = body.index("```", 1)
        out += ["```"] + [l.replace("\\", "\\\\") for l in body[1:end]] + ["```"]
        body = body[end + 1:]
    else:
        out += ["```"] + synopsis.split("\n") + ["```"]
    out += ["", "# DESCRIPTION", ""]
    convert_body(body, out)
    for src in sources[1:]:
        more = (Path(srcdir) / src).read_text().splitlines()
        sub, sub_summary = title_parts(more[0])
        out += ["", "# " + heading(sub), ""]
        if sub_summary:
            out += [inline(sub_summary[0].upper() + sub_summary[1:]) + ".", ""]
        convert_body(more[1:], out)
    out += ["", "# SEE ALSO", "",
            ", ".join(f"*{p.split('(')[0]}*({p.split('(')[1]}" for p in SEE_ALSO
                      if not p.startswith(base + "(")),
            ""]
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text)


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in PAGES:
        sys.exit("usage: md2scd.py PAGE SRCDIR OUT   (PAGE: " + ", ".join(PAGES) + ")")
    Path(sys.argv[3]).write_text(page(sys.argv[1], sys.argv[2]))


if __name__ == "__main__":
    main()
