#!/usr/bin/env python3
"""Runs a command on a pseudo-terminal, as an operator at a terminal would.

    on_a_terminal.py PROMPT ANSWER COMMAND [ARG...]

Waits (up to 30 s) until the command's output holds PROMPT, types ANSWER and
Enter, then copies everything the command printed to stdout and exits with
its exit status. If PROMPT never comes, it types nothing and says so on
stderr (exit 3 if the command is still running after the 30 s)."""
import os
import pty
import select
import sys
import time

prompt, answer, argv = sys.argv[1].encode(), sys.argv[2].encode(), sys.argv[3:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)

seen, typed, deadline = b"", False, time.monotonic() + 30
while True:
    ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
    if not ready:
        sys.stderr.write("on_a_terminal: no prompt and no end within 30 s\n")
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        sys.exit(3)
    try:
        chunk = os.read(fd, 4096)
    except OSError:  # the command closed the terminal: it is done
        chunk = b""
    if not chunk:
        break
    seen += chunk
    if not typed and prompt in seen:
        os.write(fd, answer + b"\n")
        typed = True
sys.stdout.buffer.write(seen)
if not typed:
    sys.stderr.write("on_a_terminal: the prompt never came\n")
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
