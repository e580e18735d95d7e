"""Checks, from an strace of a tree run (`encrypt -r`, `decrypt -r`, with -o
or --in-place), the order that makes it crash-safe, file by file (as the
file-system crash-consistency studies, ALICE, check applications):
  1. the output's data is written (write to its temporary file);
  2. a flush that covers it (fsync or fdatasync of that file, or a syncfs)
     starts after the last write returned, and returns before the output's
     name appears (linkat or renameat to its final name);
  3. a flush of the directory that holds the name starts after the name
     appeared and returns before the file is reported;
  4. every directory the run created (mkdir, mkdirat) is flushed into its
     parent (an fsync of the parent that starts after the mkdir returned)
     before anything below it is reported.
Prints the first violations and exits 1 if there is any, or if fewer than
NFILES outputs were seen.

  tree_order.py TRACE REPORT NFILES
TRACE from strace -f -y -ttt -T -qq -s 300 -e signal=none -e trace=openat,
write,fsync,fdatasync,syncfs,linkat,renameat,renameat2,mkdir,mkdirat (paths
absolute); REPORT is the --report file, whose lines are the `write` calls
that report. All files are on one file system, so a syncfs covers each.
"""
import os
import re
import sys
from collections import defaultdict

import strace_calls

trace, report, nfiles = sys.argv[1], os.path.realpath(sys.argv[2]), int(sys.argv[3])
FD = r'(-?\d+|AT_FDCWD)(?:<([^>]*)>(?:\(deleted\))?)?'
STR = r'"((?:[^"\\]|\\.)*)"'


def unescape(s):
    return s.encode("latin-1", "replace").decode("unicode_escape")


calls = strace_calls.calls(trace)  # (entry, exit, name, args, return value)
# In the order the kernel did them: a descriptor exists from the moment its
# openat returns (its number may have been another file's until just then).
calls.sort(key=lambda c: c[1] if c[2] == "openat" else c[0])

flushes = []      # (entry, exit, kind, fd number, path)
fd_writes = {}    # fd number -> exit of its last write since it was opened
tmp_fd = {}       # path of an open temporary file -> fd number
tmp_data = {}     # temporary name -> (fd number, exit of the data's last write)
named = {}        # output path -> (entry, exit, fd number, exit of last data write)
made = {}         # directory made -> exit of mkdir
reported = defaultdict(lambda: None)  # path -> entry of its report write
for e, x, name, args, ret in calls:
    if name == "openat":
        fd = re.match(r'(\d+)(?:<([^>]*)>)?', ret)
        if fd:
            fd_writes[fd.group(1)] = None
            if fd.group(2) and ".dcmseal-" in fd.group(2):
                tmp_fd[fd.group(2)] = fd.group(1)
    elif name == "write":
        m = re.match(FD + r', ' + STR, args)
        if not m:
            continue
        if m.group(2) == report:
            p = re.match(r'\{\\"path\\":\\"((?:[^\\]|\\[^"])*)\\"'
                         r'(?:,\\"output\\":\\"((?:[^\\]|\\[^"])*)\\")?', m.group(3))
            if p:
                out = unescape(p.group(2) or p.group(1))
                if reported[out] is None:
                    reported[out] = e
        else:
            fd_writes[m.group(1)] = x
    elif name in ("fsync", "fdatasync", "syncfs"):
        m = re.match(FD, args)
        flushes.append((e, x, name, m.group(1) if m else None, m.group(2) if m else None))
    elif name in ("linkat", "renameat", "renameat2"):
        m = re.match(FD + r', ' + STR + r', ' + FD + r', ' + STR, args)
        if not m:
            continue
        src = unescape(m.group(3))
        dst = os.path.join(m.group(5), unescape(m.group(6)))
        if src.startswith("/proc/self/fd/"):
            fd = src[len("/proc/self/fd/"):]
            data = (fd, fd_writes.get(fd))
        else:
            src = os.path.join(m.group(2), src)
            fd = tmp_fd.get(src)
            data = tmp_data.get(src, (fd, fd_writes.get(fd)))
        if ".dcmseal-" in os.path.basename(dst):
            tmp_data[dst] = data  # a temporary name on the way to a rename
        else:
            named[dst] = (e, x) + data
    elif name in ("mkdir", "mkdirat"):
        if name == "mkdirat":
            m = re.match(FD + r', ' + STR, args)
            path = m and os.path.join(m.group(2), unescape(m.group(3)))
        else:
            m = re.match(STR, args)
            path = m and unescape(m.group(1))
        if path:
            made[os.path.normpath(path)] = x


def flushed(after, before, fd=None, path=None):
    """A flush started after |after| and returned before |before| that
    covers the file open as |fd| (fsync, fdatasync or syncfs) or, for a
    directory entry, the directory |path| (an fsync of the directory:
    syncfs writes inodes back, but only fsync of a directory is specified
    to make its entries durable)."""
    return any(e >= after and x <= before and
               ((fd is not None and (n == "syncfs" or f == fd)) or
                (path is not None and n != "syncfs" and p == path))
               for e, x, n, f, p in flushes)


bad = []
seen = 0
for path, (e, x, fd, data) in named.items():
    rep = reported[path]
    if rep is None:
        continue
    seen += 1
    if data is None:
        bad.append((path, "no data write seen for its temporary file"))
    elif not flushed(data, e, fd=fd):
        bad.append((path, "its name appeared before its data was flushed"))
    if not flushed(x, rep, path=os.path.dirname(path)):
        bad.append((path, "reported before its directory was flushed"))
    # Every directory made above it, flushed into its parent before the report.
    d = os.path.dirname(path)
    while d in made:
        if not flushed(made[d], rep, path=os.path.dirname(d)):
            bad.append((path, f"reported before the new directory {d} was flushed into "
                              "its parent"))
        d = os.path.dirname(d)
for b in bad[:5]:
    print("ORDER:", *b)
if seen < nfiles:
    print(f"ORDER: {seen} reported outputs seen in the trace, {nfiles} expected")
sys.exit(0 if seen >= nfiles and not bad else 1)
