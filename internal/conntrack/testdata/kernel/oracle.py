#!/usr/bin/env python3
"""Kernel oracle for internal/conntrack.

Builds three throw-away network namespaces C (client 10.77.1.2) - O (router,
conntrack under test) - S (server 10.77.2.2), replays each scenario of
scenarios.txt by sending crafted packets with raw sockets from C or S through
O, and records after every packet which conntrack state O's mangle PREROUTING
saw (-m conntrack counters) and O's `conntrack -L`. C and S drop everything
they receive in raw PREROUTING so that their own stacks never answer.

Usage (root): python3 oracle.py scenarios.txt > observed.txt
Traffic only flows between the namespaces created here; they are deleted at
the end.
"""
import ctypes, os, socket, struct, subprocess, sys, time

LIBC = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


def setns(fd):
    if LIBC.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")

NS = {"c": "uptct-C", "o": "uptct-O", "s": "uptct-S"}
ADDR = {"c": "10.77.1.2", "s": "10.77.2.2"}


def sh(cmd, ns=None, check=True):
    if ns:
        cmd = ["ip", "netns", "exec", ns] + cmd
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    if check and r.returncode != 0:
        raise RuntimeError(f"{cmd}: {r.stderr}")
    return r.stdout


def setup():
    teardown()
    for n in NS.values():
        sh(["ip", "netns", "add", n])
    sh(["ip", "link", "add", "c0", "netns", NS["c"], "type", "veth", "peer", "o1", "netns", NS["o"]])
    sh(["ip", "link", "add", "s0", "netns", NS["s"], "type", "veth", "peer", "o2", "netns", NS["o"]])
    sh(["ip", "addr", "add", "10.77.1.2/24", "dev", "c0"], NS["c"])
    sh(["ip", "addr", "add", "10.77.2.2/24", "dev", "s0"], NS["s"])
    sh(["ip", "addr", "add", "10.77.1.1/24", "dev", "o1"], NS["o"])
    sh(["ip", "addr", "add", "10.77.2.1/24", "dev", "o2"], NS["o"])
    for k, n in NS.items():
        sh(["ip", "link", "set", "lo", "up"], n)
    sh(["ip", "link", "set", "c0", "up"], NS["c"])
    sh(["ip", "link", "set", "s0", "up"], NS["s"])
    sh(["ip", "link", "set", "o1", "up"], NS["o"])
    sh(["ip", "link", "set", "o2", "up"], NS["o"])
    sh(["ip", "route", "add", "default", "via", "10.77.1.1"], NS["c"])
    sh(["ip", "route", "add", "default", "via", "10.77.2.1"], NS["s"])
    sh(["sysctl", "-qw", "net.ipv4.ip_forward=1"], NS["o"])
    for side in ("c", "s"):
        sh(["iptables", "-t", "raw", "-A", "PREROUTING", "-j", "DROP"], NS[side])
    # ARP must work before raw sends; neighbours are resolved by a ping.
    for state in ("NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED"):
        sh(["iptables", "-t", "mangle", "-A", "PREROUTING", "-m", "conntrack", "--ctstate", state], NS["o"])
    for d in ("ORIGINAL", "REPLY"):
        sh(["iptables", "-t", "mangle", "-A", "PREROUTING", "-m", "conntrack", "--ctdir", d], NS["o"])


def teardown():
    for n in NS.values():
        subprocess.run(["ip", "netns", "del", n], capture_output=True)


def counters():
    out = sh(["iptables", "-t", "mangle", "-L", "PREROUTING", "-v", "-x", "-n"], NS["o"])
    vals = []
    for line in out.splitlines()[2:]:
        vals.append(int(line.split()[0]))
    return vals


def raw_socket(ns):
    me = os.open("/proc/self/ns/net", os.O_RDONLY)
    fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
    setns(fd)
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    setns(me)
    os.close(fd)
    os.close(me)
    return s


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b)//2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ip(src, dst, proto, l4, ident):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), ident, 0, 64, proto, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + l4


def pseudo(src, dst, proto, n):
    return socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, proto, n)


FL = {"F": 1, "S": 2, "R": 4, "P": 8, "A": 16, "U": 32, "E": 64, "C": 128}


def tcp_opts(spec):
    o = b""
    for it in filter(None, spec.split(",")):
        if it.startswith("mss"):
            o += struct.pack("!BBH", 2, 4, int(it[3:]))
        elif it.startswith("ws"):
            o += struct.pack("!BBB", 3, 3, int(it[2:])) + b"\1"
        elif it == "sack":
            o += b"\4\2\1\1"
        elif it.startswith("sackblk"):  # sackblkL-R
            l, r = it[7:].split("-")
            o += b"\1\1" + struct.pack("!BBII", 5, 10, int(l), int(r))
    while len(o) % 4:
        o += b"\0"
    return o


def parse_kv(words):
    kv = {}
    for w in words:
        k, _, v = w.partition("=")
        kv[k] = v
    return kv


def build(side, words, sent):
    """Returns (packet bytes, dst) for one scenario line."""
    proto = words[0]
    src, dst = ADDR[side], ADDR["s" if side == "c" else "c"]
    if proto == "tcp":
        flags = 0 if words[1] == "-" else sum(FL[ch] for ch in words[1])
        kv = parse_kv(words[2:])
        sp, dp = int(kv.get("sport", 40000)), int(kv.get("dport", 80))
        if side == "s":
            sp, dp = int(kv.get("sport", 80)), int(kv.get("dport", 40000))
        opts = tcp_opts(kv.get("opts", ""))
        payload = b"x" * int(kv.get("len", 0))
        hl = 20 + len(opts)
        seg = struct.pack("!HHIIBBHHH", sp, dp, int(kv.get("seq", 0)), int(kv.get("ack", 0)),
                          (hl // 4) << 4, flags, int(kv.get("win", 64240)), 0, 0) + opts + payload
        c = csum(pseudo(src, dst, 6, len(seg)) + seg) ^ (0x5555 if "badsum" in kv else 0)
        seg = seg[:16] + struct.pack("!H", c) + seg[18:]
        return ip(src, dst, 6, seg, len(sent) + 1), dst
    if proto == "udp":
        kv = parse_kv(words[1:])
        sp, dp = int(kv.get("sport", 40000)), int(kv.get("dport", 53))
        if side == "s":
            sp, dp = int(kv.get("sport", 53)), int(kv.get("dport", 40000))
        payload = b"u" * int(kv.get("len", 4))
        d = struct.pack("!HHHH", sp, dp, 8 + len(payload), 0) + payload
        c = (csum(pseudo(src, dst, 17, len(d)) + d) or 0xFFFF) ^ (0x5555 if "badsum" in kv else 0)
        d = d[:6] + struct.pack("!H", c) + d[8:]
        return ip(src, dst, 17, d, len(sent) + 1), dst
    if proto == "icmp":
        kv = parse_kv(words[1:])
        m = struct.pack("!BBHHH", int(kv.get("type", 8)), int(kv.get("code", 0)), 0,
                        int(kv.get("id", 7)), int(kv.get("seq", 1))) + b"p" * 8
        m = m[:2] + struct.pack("!H", csum(m)) + m[4:]
        return ip(src, dst, 1, m, len(sent) + 1), dst
    if proto == "icmperr":
        kv = parse_kv(words[1:])
        quoted = sent[int(kv["quote"]) - 1]
        m = struct.pack("!BBHI", int(kv.get("type", 3)), int(kv.get("code", 3)), 0, 0) + quoted[:28]
        m = m[:2] + struct.pack("!H", csum(m)) + m[4:]
        osrc, odst = kv.get("src", src), kv.get("odst", dst)
        return ip(osrc, odst, 1, m, len(sent) + 1), odst
    if proto == "sctp":
        kv = parse_kv(words[1:])
        sp, dp = ports(side, kv, 40000, 80)
        d = struct.pack("!HHII", sp, dp, int(kv.get("vtag", "0"), 0), 0) + sctp_chunks(kv.get("chunks", ""))
        c = crc32c(d) ^ (0x5555 if "badsum" in kv else 0)
        d = d[:8] + struct.pack("<I", c) + d[12:]
        return ip(src, dst, 132, d, len(sent) + 1), dst
    if proto == "raw":
        kv = parse_kv(words[1:])
        return ip(src, dst, int(kv["proto"]), bytes.fromhex(kv.get("hex", "")), len(sent) + 1), dst
    if proto == "fill":
        kv = parse_kv(words[1:])
        return ip(src, dst, int(kv["proto"]), bytes([int(kv["byte"], 0)]) * int(kv["n"]), len(sent) + 1), dst
    raise ValueError(proto)


# SCTP chunk names (RFC 9260 chunk types).
SCTP_CHUNKS = {"data": 0, "init": 1, "initack": 2, "sack": 3, "hb": 4, "hback": 5, "abort": 6,
               "shutdown": 7, "shutack": 8, "error": 9, "cookie": 10, "cookieack": 11,
               "shutcomp": 14}


def crc32c(b):
    crc = 0xFFFFFFFF
    for x in b:
        crc ^= x
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def sctp_chunks(spec):
    """Chunks joined by '+': NAME[=TAG][.T][@LEN] or tNUM. INIT and INIT ACK
    carry a 16-byte body with TAG as initiate tag; others none unless @LEN
    (length field LEN, zero body padded to a multiple of 4)."""
    out = b""
    for it in filter(None, spec.split("+")):
        ln = None
        if "@" in it:
            it, l = it.split("@")
            ln = int(l, 0)
        flags = 0
        if it.endswith(".T"):
            it, flags = it[:-2], 1
        name, _, tag = it.partition("=")
        typ = int(name[1:]) if name.startswith("t") and name[1:].isdigit() else SCTP_CHUNKS[name]
        body = b""
        if typ in (1, 2):
            body = struct.pack("!IIHHI", int(tag or "0", 0), 65535, 10, 10, 1)
        if ln is None:
            ln = 4 + len(body)
        else:
            body = b"\0" * max(0, ((ln + 3) & ~3) - 4)
        out += struct.pack("!BBH", typ, flags, ln) + body
    return out


def ports(side, kv, cport, sport):
    if side == "c":
        return int(kv.get("sport", cport)), int(kv.get("dport", sport))
    return int(kv.get("sport", sport)), int(kv.get("dport", cport))


STATES = ["NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED"]


def run(path):
    socks = {k: raw_socket(NS[k]) for k in ("c", "s")}
    # Resolve neighbours once (ARP) so raw packets are not delayed.
    sh(["ping", "-c1", "-W1", "10.77.1.1"], NS["c"], check=False)
    sh(["ping", "-c1", "-W1", "10.77.2.1"], NS["s"], check=False)
    name, sent = None, []
    for raw in open(path):
        line = raw.split("#")[0].strip()
        if not line:
            continue
        w = line.split()
        if w[0] == "scenario":
            name, sent = w[1], []
            kv = parse_kv(w[2:])
            sh(["sysctl", "-qw", f"net.netfilter.nf_conntrack_tcp_loose={kv.get('loose', '1')}"], NS["o"])
            sh(["sysctl", "-qw", f"net.netfilter.nf_conntrack_tcp_be_liberal={kv.get('liberal', '0')}"], NS["o"])
            sh(["sysctl", "-qw", f"net.netfilter.nf_conntrack_checksum={kv.get('csum', '1')}"], NS["o"])
            sh(["conntrack", "-F"], NS["o"], check=False)
            print(f"scenario {name}")
            continue
        if w[0] == "flush":
            sh(["conntrack", "-F"], NS["o"], check=False)
            continue
        if w[0] == "sleep":
            time.sleep(float(w[1]))
            continue
        side = w[0]
        pkt, dst = build(side, w[1:], sent)
        sent.append(pkt)
        before = counters()
        socks[side].sendto(pkt, (dst, 0))
        time.sleep(0.05)
        after = counters()
        delta = [a - b for a, b in zip(after, before)]
        st = [STATES[i] for i in range(5) if delta[i]]
        dr = ["ORIGINAL" if delta[5] else "", "REPLY" if delta[6] else ""]
        state = (st[0] if st else "NONE") + ("/" + "".join(dr) if "".join(dr) else "")
        print(f"pkt {len(sent)} {state}")
        for e in sorted(sh(["conntrack", "-L"], NS["o"], check=False).splitlines()):
            print(f"  ct {e}")


if __name__ == "__main__":
    try:
        setup()
        run(sys.argv[1])
    finally:
        teardown()
