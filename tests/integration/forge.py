#!/usr/bin/env python3
"""A second, independent writer of docs/FORMAT.md, for the forging test.

It knows what an attacker can know: the format (docs/FORMAT.md) and the
KEK's public half, which a PKCS#11 token shows without a PIN. With them it
makes objects that are right in every byte a public key allows: a fresh DEK
wrapped under the real KEK, the real fingerprint, the identity tag of the
real UIDs, valid segments. What it cannot make is an origin proof: that
needs the origin key, which only a user logged in to the token can use.

    forge.py --pubkey PUB.der --name NAME --kek-version N --format 1|2
             --proof none|random [--oaep sha1|sha256]
             [--uids CLASS,INSTANCE,STUDY] [--segment-size S] IN OUT

Written from the document, not from dcmseal's code (python3-cryptography).
"""
import argparse
import hashlib
import hmac
import os
import struct
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"\x89DCMSEAL"


def hkdf(dek, salt, info):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(dek)


def identity_context(uids):
    """FORMAT.md "Identity context": three length-prefixed ASCII strings."""
    if uids is None:
        return b""
    out = b""
    for uid in uids:
        u = uid.encode("ascii")
        assert len(u) <= 64
        out += bytes([len(u)]) + u
    return out


def header(version, dicom, segment, salt, idtag, commitment):
    flags = 1 if dicom else 0
    h = MAGIC + struct.pack(">HHIII", version, 128, flags, segment, 0)
    h += salt + idtag + commitment + bytes(8)
    assert len(h) == 128
    return h


def slot(name, kek_version, oaep, fingerprint, wrapped, proof):
    n = name.encode("ascii")
    s = b"SLOT" + bytes(4) + struct.pack(">QIBBH", 1, kek_version, oaep, len(n), len(wrapped))
    s += n.ljust(64, b"\0") + fingerprint + wrapped.ljust(512, b"\0")
    if proof is None:
        s += bytes(360)
    else:  # origin 1: an HMAC-SHA256 proof, 32 bytes at offset 636
        s += bytes([1]) + bytes(3) + proof + bytes(324)
    assert len(s) == 992
    return s + hashlib.sha256(s).digest()


def segments(key, aad, plain, size):
    """FORMAT.md "Payload": STREAM, nonce = index (11 bytes) || last flag."""
    gcm = AESGCM(key)
    out = b""
    chunks = [plain[i:i + size] for i in range(0, len(plain), size)] or [b""]
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1
        nonce = i.to_bytes(11, "big") + (b"\x01" if last else b"\x00")
        out += gcm.encrypt(nonce, chunk, aad)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pubkey", required=True, help="the KEK's public key, DER")
    ap.add_argument("--name", required=True)
    ap.add_argument("--kek-version", type=int, required=True)
    ap.add_argument("--format", type=int, choices=(1, 2), required=True)
    ap.add_argument("--proof", choices=("none", "random"), required=True)
    ap.add_argument("--oaep", choices=("sha1", "sha256"), default="sha1")
    ap.add_argument("--uids", help="SOP Class UID,SOP Instance UID,Study Instance UID")
    ap.add_argument("--segment-size", type=int, default=262144)
    ap.add_argument("input")
    ap.add_argument("output")
    a = ap.parse_args()

    der = open(a.pubkey, "rb").read()
    pub = serialization.load_der_public_key(der)
    spki = pub.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)
    fingerprint = hashlib.sha256(spki).digest()
    md = hashes.SHA1() if a.oaep == "sha1" else hashes.SHA256()

    dek, salt = os.urandom(32), os.urandom(32)
    k_payload = hkdf(dek, salt, b"dcmseal v1 payload")
    commitment = hkdf(dek, salt, b"dcmseal v1 commitment")
    k_id = hkdf(dek, salt, b"dcmseal v1 identity")
    uids = a.uids.split(",") if a.uids else None
    idtag = hmac.new(k_id, identity_context(uids), hashlib.sha256).digest()

    wrapped = pub.encrypt(dek, padding.OAEP(mgf=padding.MGF1(algorithm=md), algorithm=md,
                                             label=None))
    h = header(a.format, uids is not None, a.segment_size, salt, idtag, commitment)
    # The proof is what the public key cannot give: random bytes here.
    proof = os.urandom(32) if a.proof == "random" else None
    s = slot(a.name, a.kek_version, 1 if a.oaep == "sha1" else 2, fingerprint, wrapped, proof)
    plain = open(a.input, "rb").read()
    with open(a.output, "wb") as f:
        f.write(h + s + bytes(1024) + segments(k_payload, h, plain, a.segment_size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
