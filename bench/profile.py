#!/usr/bin/env python3
"""Where each microsecond of a tree run goes: runs a dcmseal command under
`perf record` (DWARF call graphs, all its threads), sorts every sample into
the step of the per-file work it was taken in, and prints the CPU time per
file of each step, for bench/RESULTS.md.

  bench/profile.py FILES -- dcmseal decrypt -r --jobs 2 SRC -o DST

FILES is how many files the command handles. A sample belongs to the first
step (in the order of STEPS) whose function is on its stack; the token's
steps come first, so what SoftHSM does inside a PKCS#11 call counts as
that call, system calls included. Needs perf and the build's debug
information (the default build type, RelWithDebInfo).
"""
import collections
import os
import re
import subprocess
import sys
import tempfile

HZ = 2000
# (step, functions any of which puts a sample in it), first match wins.
STEPS = [
    ("token: RSA unwrap (C_Decrypt)", ["C_Decrypt"]),
    ("token: unwrap set-up (C_DecryptInit)", ["C_DecryptInit"]),
    ("token: in-token rewrap (C_UnwrapKey, C_WrapKey, C_DestroyObject)",
     ["C_UnwrapKey", "C_WrapKey", "C_DestroyObject"]),
    ("token: wrap a new DEK (C_Encrypt)", ["C_Encrypt", "C_EncryptInit"]),
    ("token: origin proof check (C_VerifyInit, C_Verify)", ["C_VerifyInit", "C_Verify"]),
    ("token: origin proof (C_SignInit, C_Sign)", ["C_SignInit", "C_Sign"]),
    ("token: key lookups and the rest", ["session_run", "C_FindObjectsInit", "C_Login",
                                         "C_OpenSession", "C_Initialize"]),
    ("flush of data, new slots (syncfs, fsync, sync_file_range)",
     ["commit_flush"]),
    ("names (linkat) and flush of directories", ["outfile_group_commit",
                                                 "dcmseal_outfile_commit_all"]),
    ("key slots: wipe of the old one, unlock", ["dcmseal_rewrap_finish_all"]),
    ("flush of directories the run made", ["cli_dir_durable"]),
    ("creating the output (O_TMPFILE, checks)", ["dcmseal_outfile_openat"]),
    ("resume check (is the output there?)", ["already_done"]),
    ("DICOM identity (DCMTK)", ["dcmseal_dicom_probe_source", "probe_identity",
                                "dcmseal_dicom_probe"]),
    ("reading the input", ["read_full", "cli_open_input", "dcmseal_inspect_fd"]),
    ("writing the output", ["write_all"]),
    ("AES-GCM, header, key derivation", ["dcmseal_decrypt_update", "dcmseal_decrypt_final",
                                         "dcmseal_encrypt_update", "dcmseal_encrypt_final",
                                         "dcmseal_encrypt_init", "dcmseal_seal_fd",
                                         "dcmseal_open_fd", "dcmseal_open_fd_finish",
                                         "dcmseal_rewrap_fd_start"]),
    ("report, progress, closing files", ["record", "finish_jobs", "tree_finish",
                                         "finisher_main"]),
    ("walk (directories, the queue)", ["cli_walk", "cli_pool_walk", "visit", "enqueue"]),
    ("worker, other", ["work", "encrypt_one", "decrypt_one", "verify_one", "rewrap_one"]),
    ("start-up, exit", ["main", "_dl_start", "_dl_init", "exit"]),
]


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.exit(__doc__)
    files, cmd = int(sys.argv[1]), sys.argv[3:]
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        subprocess.run(["perf", "record", "-q", "-F", str(HZ), "--call-graph", "dwarf,16384",
                        "-o", data, "--", *cmd], check=True, stdout=subprocess.DEVNULL)
        script = subprocess.run(["perf", "script", "-i", data, "-F", "comm,tid,ip,sym"],
                                check=True, capture_output=True, text=True).stdout
    samples, stack = [], None
    for line in script.splitlines():
        if not line.strip():
            if stack is not None:
                samples.append(stack)
            stack = None
        elif line[0] not in " \t":
            stack = []
        elif stack is not None:  # "ADDRESS SYMBOL+OFFSET (DSO)"
            parts = line.split(None, 1)
            sym = re.sub(r"\s*\([^()]*\)$", "", parts[1]) if len(parts) > 1 else "?"
            stack.append(re.sub(r"\+0x[0-9a-f]+$", "", sym.strip()))
    if stack is not None:
        samples.append(stack)
    counts, leaves = collections.Counter(), collections.Counter()
    for names in samples:
        frames = set(names)
        step = next((s for s, fns in STEPS if frames.intersection(fns)), "other")
        counts[step] += 1
        if step == "other":
            leaves[" < ".join(names[:3])] += 1
    total_us = len(samples) / HZ * 1e6
    print(f"{' '.join(cmd)}\n{len(samples)} samples at {HZ} Hz: "
          f"{total_us / files:.0f} us of CPU per file, {files} files\n")
    print(f"| step | us per file | share |\n|---|---|---|")
    for step, _ in STEPS + [("other", [])]:
        if counts[step]:
            n = counts[step]
            print(f"| {step} | {n / HZ * 1e6 / files:.0f} | {100 * n / len(samples):.1f} % |")
    print("\nother, by innermost frames: " +
          "; ".join(f"{k} ({n})" for k, n in leaves.most_common(5)))


if __name__ == "__main__":
    main()
