#!/usr/bin/env python3
"""Dumps a SQLite WAL file: header, then one line per frame with its page,
commit size, salts and whether the checksum chain holds. Debugging aid."""
import struct
import sys


def cksum(native, data, s1, s2):
    fmt = "<" if native else ">"
    n = len(data) // 4
    words = struct.unpack(fmt + "%dI" % n, data)
    for i in range(0, n, 2):
        s1 = (s1 + words[i] + s2) & 0xFFFFFFFF
        s2 = (s2 + words[i + 1] + s1) & 0xFFFFFFFF
    return s1, s2


def main(path):
    b = open(path, "rb").read()
    magic, ver, ps, seq, salt1, salt2, c1, c2 = struct.unpack(">8I", b[:32])
    native = (magic & 1) == 0
    print("magic %08x version %d page_size %d ckpt_seq %d salts %08x %08x" % (magic, ver, ps, seq, salt1, salt2))
    s1, s2 = cksum(native, b[:24], 0, 0)
    ok_chain = (s1, s2) == (c1, c2)
    i, off = 1, 32
    while off + 24 + ps <= len(b):
        pg, ntr, fs1, fs2, k1, k2 = struct.unpack(">6I", b[off:off + 24])
        data = b[off + 24:off + 24 + ps]
        s1, s2 = cksum(native, b[off:off + 8], s1, s2)
        s1, s2 = cksum(native, data, s1, s2)
        valid = ok_chain and (fs1, fs2) == (salt1, salt2) and (s1, s2) == (k1, k2)
        ok_chain = valid
        print("frame %5d page %6d commit %6d %s chg=%d" % (i, pg, ntr, "ok " if valid else "BAD",
              struct.unpack(">I", data[24:28])[0] if pg == 1 else -1))
        i += 1
        off += 24 + ps


if __name__ == "__main__":
    main(sys.argv[1])
