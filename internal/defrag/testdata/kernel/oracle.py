#!/usr/bin/env python3
"""Ask the kernel how nf_defrag_ipv4 reassembles crafted IPv4 fragments.

Two throw-away namespaces, uptdfA (sender) and uptdfB (receiver), joined by a
veth pair (dfa 10.77.0.1 <-> dfb 10.77.0.2). uptdfB loads one conntrack rule
so that defragmentation runs at priority -400, and raw PREROUTING rules that
only count: every UDP packet (bytes = L3 length the rules see), -f, DF set in
the reassembled header, TTL/TOS values. A UDP socket in uptdfB records what
was delivered (length, TOS, TTL, IP options, payload digest).

Fragments are written with AF_PACKET on dfa, so uptdfA's own stack never
touches them. Usage (root): python3 oracle.py [scenario ...]; prints one
block per scenario. Everything is deleted at the end.
"""
import json, os, socket, struct, subprocess, sys, time, hashlib

A, B = "uptdfA", "uptdfB"
SRC, DST = "10.77.0.1", "10.77.0.2"
PORT = 9999
HERE = os.path.dirname(os.path.abspath(__file__))


def sh(*args, ns=None, check=True):
    cmd = list(args)
    if ns:
        cmd = ["ip", "netns", "exec", ns] + cmd
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"{cmd}: {r.stderr}")
    return r.stdout


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b)//2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def udp_datagram(n, sport=4000):
    payload = bytes((i * 7 + 3) & 0xFF for i in range(n))
    l = 8 + n
    hdr = struct.pack("!HHHH", sport, PORT, l, 0)
    pseudo = socket.inet_aton(SRC) + socket.inet_aton(DST) + struct.pack("!BBH", 0, 17, l)
    c = csum(pseudo + hdr + payload) or 0xFFFF
    return struct.pack("!HHHH", sport, PORT, l, c) + payload


def ip_frag(data, off, mf, ident, proto=17, tos=0, ttl=64, df=False, opts=b""):
    ihl = 5 + len(opts) // 4
    ff = (off // 8) | (0x2000 if mf else 0) | (0x4000 if df else 0)
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, tos, ihl * 4 + len(data), ident, ff, ttl, proto, 0,
                    socket.inet_aton(SRC), socket.inet_aton(DST)) + opts
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + data


def setup():
    teardown()
    sh("ip", "netns", "add", A)
    sh("ip", "netns", "add", B)
    sh("ip", "link", "add", "dfa", "netns", A, "type", "veth", "peer", "name", "dfb", "netns", B)
    sh("ip", "addr", "add", SRC + "/24", "dev", "dfa", ns=A)
    sh("ip", "addr", "add", DST + "/24", "dev", "dfb", ns=B)
    for ns, d in ((A, "dfa"), (B, "dfb")):
        sh("ip", "link", "set", d, "up", ns=ns)
        sh("ip", "link", "set", "lo", "up", ns=ns)
        sh("ethtool", "-K", d, "rx", "off", "tx", "off", ns=ns, check=False)
    sh("iptables", "-A", "INPUT", "-m", "conntrack", "--ctstate", "INVALID", ns=B)
    rules = [
        ["-p", "udp"],
        ["-f"],
        ["-p", "udp", "-m", "u32", "--u32", "4&0xFFFF=0x4000"],  # flags word == DF only
        ["-p", "udp", "-m", "u32", "--u32", "4&0xFFFF=0"],
    ]
    for r in rules:
        sh("iptables", "-t", "raw", "-A", "PREROUTING", "-i", "dfb", *r, ns=B)
    sh("iptables", "-A", "INPUT", "-p", "icmp", "--icmp-type", "11/1", ns=A)
    time.sleep(0.5)


def teardown():
    for ns in (A, B):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def counters():
    out = sh("iptables", "-t", "raw", "-L", "PREROUTING", "-v", "-x", "-n", ns=B).splitlines()[2:]
    vals = [tuple(int(x) for x in l.split()[:2]) for l in out if l.strip()]
    names = ["udp", "frag", "df", "noflags"]
    return {n: v for n, v in zip(names, vals)}


def icmp_count():
    out = sh("iptables", "-L", "INPUT", "-v", "-x", "-n", ns=A).splitlines()[2:]
    return int(out[0].split()[0])


def send(frames):
    """frames: list of hex IP packets; sent in order from uptdfA via AF_PACKET."""
    spec = "/tmp/uptdf-frames.json"
    with open(spec, "w") as f:
        json.dump([f.hex() for f in frames], f)
    mac_b = sh("cat", "/sys/class/net/dfb/address", ns=B).strip()
    sh("python3", os.path.join(HERE, "oracle.py"), "--send", mac_b, spec, ns=A)
    os.unlink(spec)


def do_send(mac_b, spec):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind(("dfa", 0))
    src = bytes.fromhex(open("/sys/class/net/dfa/address").read().strip().replace(":", ""))
    dst = bytes.fromhex(mac_b.replace(":", ""))
    for h in json.load(open(spec)):
        s.send(dst + src + b"\x08\x00" + bytes.fromhex(h))
        time.sleep(0.002)


RECV = r'''
import socket, struct, sys, hashlib, json, select, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_IP, 13, 1)  # IP_RECVTOS
s.setsockopt(socket.SOL_IP, 12, 1)  # IP_RECVTTL
s.setsockopt(socket.SOL_IP, 6, 1)   # IP_RECVOPTS
s.bind(("0.0.0.0", 9999))
print("ready", flush=True)
end = time.time() + float(sys.argv[1])
while time.time() < end:
    r, _, _ = select.select([s], [], [], 0.1)
    if not r: continue
    d, anc, _, _ = s.recvmsg(70000, 1024)
    m = {"len": len(d), "md5": hashlib.md5(d).hexdigest()[:8]}
    for lvl, typ, val in anc:
        if typ == 1: m["tos"] = val[0]
        elif typ == 2: m["ttl"] = struct.unpack("i", val[:4])[0]
        elif typ == 6: m["opts"] = val.hex()
    print(json.dumps(m), flush=True)
'''


def run(name, frames, wait=0.3, recv_secs=None):
    sh("iptables", "-t", "raw", "-Z", ns=B)
    sh("iptables", "-Z", ns=A)
    p = subprocess.Popen(["ip", "netns", "exec", B, "python3", "-c", RECV, str(recv_secs or (wait + 1.5))],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    send(frames)
    time.sleep(wait)
    c = counters()
    out, _ = p.communicate(timeout=60)
    got = [json.loads(l) for l in out.splitlines() if l.strip()]
    print(f"== {name}")
    print(f"   raw PREROUTING: udp pkts={c['udp'][0]} bytes={c['udp'][1]}  -f={c['frag'][0]}  "
          f"DF-only={c['df'][0]} noflags={c['noflags'][0]}  ICMP-11/1-at-A={icmp_count()}")
    for g in got:
        print("   delivered:", json.dumps(g, sort_keys=True))
    if not got:
        print("   delivered: nothing")
    return c, got


def md5(b):
    return hashlib.md5(b).hexdigest()[:8]


def scenarios():
    d = udp_datagram(92)  # 100 bytes of L4
    alt = bytes(0xEE for _ in d)
    F = lambda a, b, mf, ident, src=d, **kw: ip_frag(src[a:b], a, mf, ident, **kw)
    yield "in-order 2 fragments (100 B of L4; expect 120 B, md5 %s)" % md5(d[8:]), \
        [F(0, 48, True, 101), F(48, 100, False, 101)]
    yield "reverse order", [F(48, 100, False, 102), F(0, 48, True, 102)]
    yield "exact duplicate of first", [F(0, 48, True, 103), F(0, 48, True, 103), F(48, 100, False, 103)]
    yield "duplicate with other bytes (which copy wins?)", \
        [F(0, 48, True, 104), F(8, 48, True, 104, src=alt), F(48, 100, False, 104)]
    yield "tail overlap [0,24)+[16,100)", [F(0, 24, True, 105), F(16, 100, False, 105)]
    yield "overlap then the missing piece", [F(0, 24, True, 106), F(16, 40, True, 106), F(24, 100, False, 106)]
    yield "contained in in-order run: [0,16)[16,32)[8,24)alt[32,100)", \
        [F(0, 16, True, 107), F(16, 32, True, 107), F(8, 24, True, 107, src=alt), F(32, 100, False, 107)]
    yield "same, separate runs: [16,32)[0,16)[8,24)alt[32,100)", \
        [F(16, 32, True, 108), F(0, 16, True, 108), F(8, 24, True, 108, src=alt), F(32, 100, False, 108)]
    yield "contained in a later run, out of order: [32,100)[0,16)[16,32)[20,28)alt", \
        [F(32, 100, False, 109), F(0, 16, True, 109), F(16, 32, True, 109), F(20, 28, True, 109, src=alt)]
    yield "zero-length MF fragment at 16", [F(0, 16, True, 110), F(16, 16, True, 110), F(16, 100, False, 110)]
    yield "MF fragment not multiple of 8: [0,20)MF [16,100)", [F(0, 20, True, 111), F(16, 100, False, 111)]
    yield "MF beyond last: [16,100)last [96,104)MF [0,16)MF", \
        [F(16, 100, False, 112), ip_frag(b"x" * 8, 96, True, 112), F(0, 16, True, 112)]
    yield "two different last fragments: [16,100)last [16,96)last [0,16)", \
        [F(16, 100, False, 113), F(16, 96, False, 113), F(0, 16, True, 113)]
    yield "last fragment sent twice: [16,100)last [16,100)last [0,16)", \
        [F(16, 100, False, 125), F(16, 100, False, 125), F(0, 16, True, 125)]
    yield "last fragment in pieces [16,48)MF [48,100) then [16,100)last again, then [0,16)", \
        [F(16, 48, True, 126), F(48, 100, False, 126), F(16, 100, False, 126), F(0, 16, True, 126)]
    yield "fragment completely covering earlier separate runs: [16,24)[32,40)[8,48)MF [0,8) [48,100)", \
        [F(16, 24, True, 127), F(32, 40, True, 127), F(8, 48, True, 127), F(0, 8, True, 127), F(48, 100, False, 127)]
    yield "last fragment not a multiple of 8 (fine): [0,16) [16,99)", [F(0, 16, True, 128), F(16, 99, False, 128)]
    yield "last shorter than data already seen: [48,100)MF?no: [0,48)MF [48,56)MF [8,40)last", \
        [F(0, 48, True, 114), F(48, 56, True, 114), ip_frag(d[8:40], 8, False, 114)]
    yield "TTL/TOS from the first fragment (sent last): last ttl=60 tos=0x10, first ttl=50 tos=0x20", \
        [F(48, 100, False, 115, ttl=60, tos=0x10), F(0, 48, True, 115, ttl=50, tos=0x20)]
    yield "ECN ECT(0) + Not-ECT", [F(0, 48, True, 116, tos=0x02), F(48, 100, False, 116, tos=0x00)]
    yield "ECN ECT(0) first + CE", [F(0, 48, True, 117, tos=0x02), F(48, 100, False, 117, tos=0x03)]
    yield "ECN CE first + ECT(1)", [F(0, 48, True, 118, tos=0x03), F(48, 100, False, 118, tos=0x01)]
    yield "DF on the first (68 B, smaller) fragment", [F(0, 48, True, 119, df=True), F(48, 100, False, 119)]
    yield "DF only on the last (72 B, larger) fragment", [F(0, 48, True, 120), F(48, 100, False, 120, df=True)]
    yield "DF on both", [F(0, 48, True, 121, df=True), F(48, 100, False, 121, df=True)]
    yield "options: first has 4 NOPs... (RR-like 0x07), second other", \
        [F(0, 48, True, 122, opts=bytes([7, 7, 4, 0, 0, 0, 0, 0])), F(48, 100, False, 122, opts=bytes([1, 1, 1, 0]))]
    yield "same id, different proto (17 vs 253)", [F(0, 48, True, 123), F(48, 100, False, 123, proto=253)]


def big_scenarios():
    # Oversize: a datagram whose reassembled length is > 65535.
    n = 65536  # L4 bytes; + 20 header > 65535
    big = bytes(i & 0xFF for i in range(n))
    frames = []
    for off in range(0, n, 1480):
        end = min(off + 1480, n)
        frames.append(ip_frag(big[off:end], off, end < n, 201, proto=253))
    yield "oversize: 65536 B of L4 in 1480-B fragments", frames
    n = 65512
    ok = udp_datagram(n - 8, sport=4001)
    frames = []
    for off in range(0, n, 1480):
        end = min(off + 1480, n)
        frames.append(ip_frag(ok[off:end], off, end < n, 202))
    yield "max size: 65512 B of L4 (65532 total)", frames
    d = udp_datagram(92, sport=4002)
    for k in (60, 64, 65, 70):
        frames = [ip_frag(d[0:48], 0, True, 300 + k)]
        frames += [ip_frag(b"z" * 16, 0, True, 1000 + k * 100 + i, proto=253) for i in range(k)]
        frames.append(ip_frag(d[48:100], 48, False, 300 + k))
        yield f"max_dist: {k} other fragments from the same source in between", frames


def sockstat():
    return [l for l in sh("cat", "/proc/net/sockstat", ns=B).splitlines() if "FRAG" in l][0]


def mem_scenarios():
    d = udp_datagram(92, sport=4005)
    print("== memory (fresh namespaces)")
    print("   start:", sockstat())
    for n, size in ((10, 8), (10, 1480)):
        send([ip_frag(b"q" * size, 0, True, 8000 + size + i, proto=253) for i in range(n)])
        time.sleep(0.3)
        print(f"   +{n} queues, one first fragment of {size} data bytes:", sockstat())
        send([ip_frag(b"q" * size, size, True, 8000 + size + i, proto=253) for i in range(n)])
        time.sleep(0.3)
        print(f"   +a second fragment of {size} data bytes in each:", sockstat())
    send([ip_frag(b"q" * 8, 0, True, 8100 + i, proto=253, opts=bytes([1, 1, 1, 1])*10) for i in range(10)])
    time.sleep(0.3)
    print("   +10 queues, one first fragment with 40 B of options:", sockstat())
    run("DUP last fragment sets LAST_IN: [0,48)MF [16,48)last(dup) [48,100)last",
        [ip_frag(d[0:48], 0, True, 8200), ip_frag(d[16:48], 16, False, 8200), ip_frag(d[48:100], 48, False, 8200)])
    run("control: [0,48)MF [16,48)MF(dup) [48,100)last",
        [ip_frag(d[0:48], 0, True, 8201), ip_frag(d[16:48], 16, True, 8201), ip_frag(d[48:100], 48, False, 8201)])
    run("PREROUTING and a 2nd datagram with the same id from another proto joined? [0,48)p17 [0,48)p253 [48,100)p17",
        [ip_frag(d[0:48], 0, True, 8202), ip_frag(d[0:48], 0, True, 8202, proto=253), ip_frag(d[48:100], 48, False, 8202)])
    sh("sysctl", "-w", "net.ipv4.ipfrag_low_thresh=0", ns=B)
    sh("sysctl", "-w", "net.ipv4.ipfrag_high_thresh=100000", ns=B)
    print("   high_thresh=100000:", sockstat())
    send([ip_frag(d[0:48], 0, True, 8500)])
    send([ip_frag(b"q" * 1480, 0, True, 8300 + i, proto=253) for i in range(40)])
    time.sleep(0.3)
    print("   +40 queues of one 1500-B first fragment:", sockstat())
    run("  ... then a 2-fragment datagram", [ip_frag(d[0:48], 0, True, 8400), ip_frag(d[48:100], 48, False, 8400)])
    print("   ", sockstat())
    run("  ... then the last fragment of a datagram whose first came before the flood",
        [ip_frag(d[48:100], 48, False, 8500)])
    print("   ", sockstat())


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--send":
        do_send(sys.argv[2], sys.argv[3])
        return
    only = sys.argv[1:]
    setup()
    try:
        sh("sysctl", "-w", "net.ipv4.ipfrag_time=30", ns=B)
        for name, frames in scenarios():
            if not only or "small" in only:
                run(name, frames)
        if "mem" in only:
            mem_scenarios()
            return
        if only and "big" not in only:
            return
        for name, frames in big_scenarios():
            run(name, frames, wait=1.0)
        # Timeout and ICMP time exceeded (code 1).
        sh("sysctl", "-w", "net.ipv4.ipfrag_time=1", ns=B)
        d = udp_datagram(92, sport=4003)
        run("timeout, first fragment present (ipfrag_time=1)", [ip_frag(d[0:48], 0, True, 401)], wait=2.5)
        run("timeout, only a non-first fragment", [ip_frag(d[48:100], 48, False, 402)], wait=2.5)
        run("timeout, first fragment to a non-local address (10.77.0.9)",
            [ip_frag(d[0:48], 0, True, 403)[:16] + socket.inet_aton("10.77.0.9") + ip_frag(d[0:48], 0, True, 403)[20:]],
            wait=2.5)
        sh("sysctl", "-w", "net.ipv4.ipfrag_time=30", ns=B)
        # Memory: what a queue costs (sockstat FRAG line), then the high threshold.
        frames = [ip_frag(b"q" * 1480, 0, True, 5000 + i, proto=253) for i in range(10)]
        run("10 queues of one 1500-B first fragment", frames)
        print("   sockstat:", [l for l in sh("cat", "/proc/net/sockstat", ns=B).splitlines() if "FRAG" in l])
        frames = [ip_frag(b"q" * 8, 0, True, 6000 + i, proto=253) for i in range(10)]
        run("10 queues of one 28-B first fragment", frames)
        print("   sockstat:", [l for l in sh("cat", "/proc/net/sockstat", ns=B).splitlines() if "FRAG" in l])
        sh("sysctl", "-w", "net.ipv4.ipfrag_low_thresh=0", ns=B)
        sh("sysctl", "-w", "net.ipv4.ipfrag_high_thresh=60000", ns=B)
        frames = [ip_frag(b"q" * 1480, 0, True, 7000 + i, proto=253) for i in range(40)]
        run("high_thresh=60000: 40 first fragments", frames)
        print("   sockstat:", [l for l in sh("cat", "/proc/net/sockstat", ns=B).splitlines() if "FRAG" in l])
        d = udp_datagram(92, sport=4004)
        run("  ... then a 2-fragment datagram", [ip_frag(d[0:48], 0, True, 404), ip_frag(d[48:100], 48, False, 404)])
        print("   sockstat:", [l for l in sh("cat", "/proc/net/sockstat", ns=B).splitlines() if "FRAG" in l])
    finally:
        teardown()


if __name__ == "__main__":
    main()
