#!/usr/bin/python3
"""Unwraps a Data-Security SA's keys from a GSA_AUTH response's KD payload
the way RFC 9838 and RFC 8784 define it, with nothing of the project's code:
an independent check of the keys the GM installed.

  kd-keys.py CHARON-LOG PPK-HEX KD-HEX SPI-HEX

CHARON-LOG is the GM's charon log at `ike = 4`, which dumps SK_d when the
IKE SA's keys are derived (keymat_v2: "Sk_d secret") and again once the PPK
replaced it. The PRF is HMAC-SHA-256 and the KWA AES-256 key wrap with
padding (RFC 5649), as the test negotiates. Prints, one per line:

  skd_logged_after_ppk_matches <yes|no>
  keymat <hex of the ESP SA's keying material, SPI-HEX>
"""

import hashlib
import hmac
import re
import sys

from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding


def prf_plus(key, seed, length):
    """RFC 7296 section 2.13 with HMAC-SHA-256."""
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(key, t + seed + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:length]


def logged_skds(path):
    """Every "Sk_d secret" dump in a charon log, in order."""
    lines = open(path, errors="replace").read().splitlines()
    found = []
    for n, line in enumerate(lines):
        m = re.search(r"Sk_d secret => (\d+) bytes", line)
        if not m:
            continue
        want, data = int(m.group(1)), b""
        for dump in lines[n + 1:]:
            d = re.search(r"^\S*\s*\S*\s+\d+: ((?:[0-9A-F]{2} ?){1,16})", dump)
            if not d:
                break
            data += bytes.fromhex(d.group(1).replace(" ", ""))
            if len(data) >= want:
                break
        found.append(data[:want])
    return found


def sa_keys(kd, spi):
    """The SA_KEY of the ESP key bag for SPI: (Key ID, KWK ID, wrapped)."""
    pos = 0
    while pos + 4 <= len(kd):
        proto, spi_size, length = kd[pos], kd[pos + 1], int.from_bytes(kd[pos + 2:pos + 4], "big")
        bag = kd[pos:pos + length]
        if proto == 3 and bag[4:4 + spi_size] == spi:
            attrs = bag[4 + spi_size:]
            a = 0
            while a + 4 <= len(attrs):
                atype, alen = int.from_bytes(attrs[a:a + 2], "big"), int.from_bytes(attrs[a + 2:a + 4], "big")
                value = attrs[a + 4:a + 4 + alen]
                if atype == 1:  # SA_KEY, TLV
                    return value[0:4], value[4:8], value[8:]
                a += 4 + alen
        pos += length
    raise SystemExit(f"no SA_KEY for ESP SPI {spi.hex()} in the KD payload")


def main():
    log, ppk, kd, spi = sys.argv[1], bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3]), bytes.fromhex(sys.argv[4])
    skds = logged_skds(log)
    if len(skds) < 2:
        raise SystemExit(f"{len(skds)} Sk_d dumps in {log}, want the classical one and the PPK's")
    classical = skds[0]
    # RFC 8784 section 3: SK_d' = prf+ (PPK, SK_d)
    skd = prf_plus(ppk, classical, len(classical))
    print("skd_logged_after_ppk_matches", "yes" if skd == skds[1] else "no")
    # RFC 9838 section 3.1.1: GSK_w = prf+(SK_d, "Key Wrap for G-IKEv2")
    gsk_w = prf_plus(skd, b"Key Wrap for G-IKEv2", 32)
    key_id, kwk_id, wrapped = sa_keys(kd, spi)
    if key_id != bytes(4) or kwk_id != bytes(4):
        raise SystemExit("SA_KEY not under the default KWK")
    print("keymat", aes_key_unwrap_with_padding(gsk_w, wrapped).hex())


main()
