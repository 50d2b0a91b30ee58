import struct, re, sys
data = open("cap.pcap","rb").read()
magic = struct.unpack("<I", data[:4])[0]
assert magic in (0xa1b2c3d4, 0xa1b23c4d), hex(magic)
off = 24
pkts = []
while off < len(data):
    ts1, ts2, incl, orig = struct.unpack("<IIII", data[off:off+16]); off += 16
    pkts.append(data[off:off+incl]); off += incl
def key(p):
    ip = p[14:]
    return (ip[12:16], ip[16:20], struct.unpack("!H", ip[4:6])[0])
def a2b(s): return bytes(int(x) for x in s.split("."))
out = []
for line in open("dmesg.txt", encoding="latin1"):
    line = line.rstrip("\n")
    m = re.match(r"\[\s*[\d.]+\] (u[A-Z0-9]+:\s?)(IN=.*)$", line)
    prefix, rest = m.group(1), m.group(2)
    f = re.search(r"SRC=([\d.]+) DST=([\d.]+) LEN=\d+ TOS=0x.. PREC=0x.. TTL=\d+ ID=(\d+)", rest)
    k = (a2b(f.group(1)), a2b(f.group(2)), int(f.group(3)))
    cand = [p for p in pkts if key(p) == k]
    sp = re.match(r"[^\[]*? SPT=(\d+) DPT=(\d+) ", rest)
    if sp:
        ihl0 = lambda p: (p[14] & 0xf) * 4
        cand = [p for p in cand if struct.unpack("!HH", p[14+ihl0(p):14+ihl0(p)+4]) == (int(sp.group(1)), int(sp.group(2)))]
    assert cand, line
    p = cand[0]
    # The receiving kernel fills in IP options (record route) in ip_rcv,
    # before netfilter: use the option bytes the log line shows.
    op = re.match(r"[^\[]*? OPT \(([0-9A-F]+)\) PROTO=", rest)
    if op:
        ihl = (p[14] & 0xf) * 4
        ob = bytes.fromhex(op.group(1))
        assert len(ob) == ihl - 20
        p = p[:34] + ob + p[14+ihl:]
    inif = re.match(r"IN=(\S*) OUT=(\S*)", rest)
    mark = re.search(r" MARK=0x([0-9a-f]+) $", rest)
    uid = re.search(r" UID=(\d+) GID=(\d+) ", rest)
    out.append("\t".join([prefix, inif.group(1), inif.group(2), mark.group(1) if mark else "0",
        uid.group(1) if uid else "-", uid.group(2) if uid else "-", p[:14].hex(), p[14:].hex(), prefix + rest]))
print("\n".join(out))
