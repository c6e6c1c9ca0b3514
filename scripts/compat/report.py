#!/usr/bin/python3
"""Results of scripts/compat.sh: reads one case's logs, prints its line,
and writes the report.

    report.py python <name> <native-dir> <lwk-dir>   one CPython test module
    report.py plain <kind> <name> <native-dir> <lwk-dir>   a busybox applet or stressor
    report.py report <results.tsv> <out.md>          the Markdown report

A case directory holds `rc` (exit status, 124 on timeout), `secs`, `out`
(stdout + stderr) and, for CPython, `junit.xml` (regrtest --junit-xml).
Each case line is also appended as a tab-separated row to $COMPAT_RESULTS.
"""
import os
import re
import sys
import xml.etree.ElementTree as ET

# "test_x (test.test_os.Class.test_x) ... ok" (regrtest -v); the result
# may come after output the test printed, the name before a docstring line.
LINE = re.compile(r"^(test\w*) \(([\w.]+)\)(?:\n[^\n]*?)? \.\.\. ", re.M)
STATUS = re.compile(r"\b(ok|FAIL|ERROR|skipped|expected failure|unexpected success)\b")


def read(d, name, default=""):
    try:
        with open(os.path.join(d, name), errors="replace") as f:
            return f.read().strip()
    except OSError:
        return default


def python_results(d):
    """{test id: 'pass' | 'fail' | 'skip'} of one run, from its JUnit XML,
    else (a run cut short) from its verbose output."""
    res = {}
    xml = os.path.join(d, "junit.xml")
    if os.path.exists(xml):
        try:
            for tc in ET.parse(xml).iter("testcase"):
                kids = {c.tag for c in tc}
                name = tc.get("name")
                if "failure" in kids or "error" in kids:
                    res[name] = "fail"
                elif "skipped" in kids:
                    res[name] = "skip"
                else:
                    res[name] = "pass"
            if res:
                return res
        except ET.ParseError:
            pass
    out = read(d, "out")
    starts = list(LINE.finditer(out))
    for i, m in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(out)
        s = STATUS.search(out, m.end(), end)
        name = m.group(2) if "." in m.group(2) else m.group(1)
        if not s:
            res[name] = "fail"  # started, never finished (timeout or crash)
        elif s.group(1) in ("ok", "expected failure"):
            res[name] = "pass"
        elif s.group(1) == "skipped":
            res[name] = "skip"
        else:
            res[name] = "fail"
    return res


def verdict(rc):
    if rc == "124":
        return "TIMEOUT"
    if rc == "0":
        return "ok"
    return f"rc={rc}"


def record(row):
    path = os.environ.get("COMPAT_RESULTS")
    if path:
        with open(path, "a") as f:
            f.write("\t".join(str(x) for x in row) + "\n")


def python_case(name, nd, ld):
    n, l = python_results(nd), python_results(ld)
    npass = {t for t, r in n.items() if r == "pass"}
    lpass = {t for t, r in l.items() if r == "pass"}
    lost = sorted(npass - lpass)
    ratio = len(npass & lpass) / len(npass) if npass else 1.0
    nrc, lrc = read(nd, "rc", "?"), read(ld, "rc", "?")
    row = [
        "python", name,
        verdict(nrc), len(npass), len(n), read(nd, "secs"),
        verdict(lrc), len(lpass), len(l), read(ld, "secs"),
        f"{ratio:.3f}", " ".join(lost),
    ]
    record(row)
    print(
        f"python   {name:<22} native {verdict(nrc):<8} {len(npass):4}/{len(n):<4} {read(nd, 'secs'):>7}s"
        f"   lwk {verdict(lrc):<8} {len(lpass):4}/{len(l):<4} {read(ld, 'secs'):>7}s   ratio {ratio:.3f}"
        + (f"   lost: {len(lost)}" if lost else ""),
        flush=True,
    )


def plain_case(kind, name, nd, ld):
    nrc, lrc = read(nd, "rc", "?"), read(ld, "rc", "?")
    nout, lout = read(nd, "out"), read(ld, "out")
    if kind == "busybox":
        # Same status and same output.
        same = nrc == lrc and nout == lout
        why = "" if same else ("status" if nrc != lrc else "output")
    else:
        # stress-ng: the LWK passes where Linux passes (0); 3 = not
        # implemented / skipped there.
        same = nrc != "0" or lrc == "0"
        why = "" if same else "failed"
    passed = 1 if same else 0
    row = [kind, name, verdict(nrc), 1 if nrc == "0" else 0, 1, read(nd, "secs"),
           verdict(lrc), 1 if lrc == "0" else 0, 1, read(ld, "secs"), f"{passed:.3f}", why]
    record(row)
    print(
        f"{kind:<8} {name:<22} native {verdict(nrc):<8} {read(nd, 'secs'):>7}s"
        f"   lwk {verdict(lrc):<8} {read(ld, 'secs'):>7}s   {'same' if same else 'DIFFERS (' + why + ')'}",
        flush=True,
    )


def report(tsv, out_md):
    rows = []
    with open(tsv) as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) >= 12:
                rows.append(p)
    lines = ["# Compatibility run: native Linux vs. the LWK (mcexec)", ""]
    meta = os.environ.get("COMPAT_META", "")
    if meta:
        lines += [meta, ""]
    for kind, title in (("python", "CPython 3.11 regression tests"), ("busybox", "busybox applets"), ("stress-ng", "stress-ng --class os")):
        sel = [r for r in rows if r[0] == kind]
        if not sel:
            continue
        lines += [f"## {title}", ""]
        if kind == "python":
            lines += ["| module | Linux | passed | time s | LWK | passed | time s | ratio | passed on Linux only |",
                      "|---|---|--:|--:|---|--:|--:|--:|---|"]
            for r in sel:
                lost = r[11].split()
                shown = ", ".join(t.rsplit(".", 1)[-1] for t in lost[:8]) + (f" (+{len(lost) - 8})" if len(lost) > 8 else "")
                lines.append(f"| {r[1]} | {r[2]} | {r[3]}/{r[4]} | {r[5]} | {r[6]} | {r[7]}/{r[8]} | {r[9]} | {r[10]} | {shown} |")
            tn = sum(int(r[3]) for r in sel)
            tl = sum(round(float(r[10]) * int(r[3])) for r in sel)
            lines += ["", f"Tests passing on Linux that pass on the LWK too: {tl}/{tn} ({(tl / tn if tn else 1):.3f})."]
        else:
            lines += ["| case | Linux | time s | LWK | time s | same |", "|---|---|--:|---|--:|---|"]
            for r in sel:
                lines.append(f"| {r[1]} | {r[2]} | {r[5]} | {r[6]} | {r[9]} | {'yes' if r[10] == '1.000' else 'no: ' + r[11]} |")
            same = sum(1 for r in sel if r[10] == "1.000")
            lines += ["", f"Same result as Linux: {same}/{len(sel)}."]
        lines.append("")
    with open(out_md, "w") as f:
        f.write("\n".join(lines))


def main(a):
    if a[0] == "python":
        python_case(a[1], a[2], a[3])
    elif a[0] == "plain":
        plain_case(a[1], a[2], a[3], a[4])
    elif a[0] == "report":
        report(a[1], a[2])
    else:
        sys.exit(f"report.py: unknown command {a[0]}")


if __name__ == "__main__":
    main(sys.argv[1:])
