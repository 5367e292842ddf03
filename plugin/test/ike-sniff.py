#!/usr/bin/env python3
"""ike-sniff.py IFACE OUTFILE: print the IKE headers seen on IFACE.

One line per IKE message on UDP 500/4500 (IPv4):
    SRC:PORT > DST:PORT exch=<type> <request|response> mid=<id> len=<bytes>
Needs root (AF_PACKET); runs until killed; creates OUTFILE.ready once it
listens.  Used by run-patch-proof to show which exchange type is on the
wire (the IKE header is never encrypted).
"""
import socket
import struct
import sys

ETH_P_ALL = 0x0003


def main():
    iface, out = sys.argv[1], sys.argv[2]
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((iface, 0))
    # Tell the caller the socket sees traffic from now on.
    open(out + ".ready", "w").close()
    with open(out, "a", buffering=1) as log:
        while True:
            frame = sock.recv(65535)
            if len(frame) < 14 + 20 + 8 or frame[12:14] != b"\x08\x00":
                continue
            ip = frame[14:]
            ihl = (ip[0] & 0x0F) * 4
            if ip[9] != 17:  # UDP
                continue
            udp = ip[ihl:]
            sport, dport = struct.unpack("!HH", udp[:4])
            ike = udp[8:]
            if 4500 in (sport, dport):
                if ike[:4] != b"\x00\x00\x00\x00":
                    continue  # ESP or keepalive
                ike = ike[4:]
            elif 500 not in (sport, dport):
                continue
            if len(ike) < 28:
                continue
            exch, flags = ike[18], ike[19]
            mid, length = struct.unpack("!II", ike[20:28])
            src = socket.inet_ntoa(ip[12:16])
            dst = socket.inet_ntoa(ip[16:20])
            kind = "response" if flags & 0x20 else "request"
            log.write(f"{src}:{sport} > {dst}:{dport} exch={exch} {kind} "
                      f"mid={mid} len={length}\n")


if __name__ == "__main__":
    main()
