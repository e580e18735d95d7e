"""The system calls of an strace log, for the order checks
(rewrap_order.py, tree_order.py).

calls(PATH): every call that succeeded, from a log written by
strace -f -ttt -T (-y for paths), as (entry time, exit time, name, argument
text, return value text), in the log's order. A call another thread
interrupted ("<unfinished ...>", then "<... NAME resumed>") is put back
together, with its entry time.
"""
import re

LINE = re.compile(r'^(\d+) +([\d.]+) (.*)$')
RESUMED = re.compile(r'<\.\.\. (\w+) resumed>(.*)$')


def calls(path):
    pending = {}  # pid -> (entry time, text before "<unfinished ...>")
    out = []
    for raw in open(path, errors="replace"):
        m = LINE.match(raw.rstrip("\n"))
        if not m:
            continue
        pid, ts, rest = m.group(1), float(m.group(2)), m.group(3)
        if rest.endswith("<unfinished ...>"):
            pending[pid] = (ts, rest[: -len("<unfinished ...>")])
            continue
        entry = ts
        r = RESUMED.match(rest)
        if r:
            entry, head = pending.pop(pid, (ts, r.group(1) + "("))
            rest = head + r.group(2)
        d = re.search(r'\) += (.*) <([\d.]+)>$', rest)
        n = re.match(r'(\w+)\((.*)$', rest)
        if not d or not n or d.group(1).startswith("-1"):
            continue
        out.append((entry, entry + float(d.group(2)), n.group(1), n.group(2), d.group(1)))
    return out
