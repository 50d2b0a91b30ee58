import socket, struct, sys

SRC = socket.inet_aton("10.77.0.1")
DST = socket.inet_aton("10.77.0.2")

def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b)//2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff

def ip(proto, payload, ident, tos=0, flags_frag=0x4000, ttl=64, opts=b"", src=SRC, dst=DST, total=None):
    ihl = 5 + len(opts)//4
    tl = total if total is not None else ihl*4 + len(payload)
    h = struct.pack("!BBHHHBBH4s4s", 0x40|ihl, tos, tl, ident, flags_frag, ttl, proto, 0, src, dst) + opts
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + payload

def tcp(sport, dport, seq, ack, flags, win, opts=b"", payload=b"", res=0, urg=0, src=SRC, dst=DST):
    doff = 5 + len(opts)//4
    h = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, (doff<<4)|res, flags, win, 0, urg) + opts
    ph = struct.pack("!4s4sBBH", src, dst, 0, 6, len(h)+len(payload))
    c = csum(ph + h + payload)
    return h[:16] + struct.pack("!H", c) + h[18:] + payload

def udp(sport, dport, payload, src=SRC, dst=DST):
    h = struct.pack("!HHHH", sport, dport, 8+len(payload), 0)
    ph = struct.pack("!4s4sBBH", src, dst, 0, 17, 8+len(payload))
    c = csum(ph + h + payload) or 0xffff
    return h[:6] + struct.pack("!H", c) + payload

def icmp(t, c, rest, payload=b""):
    h = struct.pack("!BBH", t, c, 0) + rest + payload
    return h[:2] + struct.pack("!H", csum(h)) + h[4:]

synopts = bytes.fromhex("020405b40402080a5f9c50ad000000000103030a")
pkts = []
pkts.append(ip(6, tcp(42796, 5003, 3070165056, 0, 0x02, 64240, synopts), 1001))
pkts.append(ip(6, tcp(1234, 80, 77, 5555, 0x01|0x08|0x10|0x20|0x40|0x80, 512, payload=b"0123456789", res=0xf, urg=5), 1002, tos=0xb8))
rr = bytes([7, 7, 4, 0, 0, 0, 0, 0])  # record route + EOL
pkts.append(ip(6, tcp(1235, 81, 1, 2, 0x10, 100), 1003, opts=rr))
pkts.append(ip(6, tcp(1236, 82, 1, 2, 0x10, 100)[:10], 1004))
pkts.append(ip(6, tcp(1237, 83, 1, 2, 0x18, 100, payload=b"x"*16)[:24], 1005, flags_frag=0x2000 | 0))
pkts.append(ip(6, b"y"*16, 1006, flags_frag=100))
pkts.append(ip(17, udp(40000, 9, b"hello"), 1007, flags_frag=0x8000 | 0x4000, tos=0x03))
pkts.append(ip(17, udp(40001, 7, b"marked"), 1008))
pkts.append(ip(17, udp(40002, 5001, b"closed"), 1009))
pkts.append(ip(17, udp(40003, 9, b"")[:4], 1010))
pkts.append(ip(1, icmp(8, 0, struct.pack("!HH", 0x1234, 7), b"ping"*8), 1011))
inner_udp = ip(17, udp(5004, 32948, b"hello"), 24442, src=DST, dst=SRC)
pkts.append(ip(1, icmp(12, 0, struct.pack("!BBH", 20, 0, 0), inner_udp[:28]), 1012, tos=0xc0))
pkts.append(ip(1, icmp(5, 1, socket.inet_aton("10.77.0.9"), inner_udp[:28]), 1013))
inner_tcp = ip(6, tcp(5003, 42796, 99, 0, 0x12, 1000), 555, src=DST, dst=SRC)
pkts.append(ip(1, icmp(3, 4, struct.pack("!HH", 0, 1400), inner_tcp[:28]), 1014))
pkts.append(ip(1, icmp(11, 0, b"\0\0\0\0", inner_udp[:28]), 1015))
pkts.append(ip(1, icmp(13, 0, struct.pack("!HH", 1, 2), b"abcd"), 1016))
pkts.append(ip(1, icmp(3, 3, b"\0\0\0\0"), 1017))
pkts.append(ip(51, struct.pack("!BBHI", 4, 4, 0, 0x100) + b"\0"*16, 1018))
pkts.append(ip(50, struct.pack("!II", 0xdeadbeef, 1) + b"\0"*16, 1019))
pkts.append(ip(47, b"\0"*8, 1020))
inner_opt = ip(17, udp(5005, 33000, b"zz"), 777, src=DST, dst=SRC, opts=rr)
pkts.append(ip(1, icmp(3, 1, b"\0\0\0\0", inner_opt[:36]), 1021))
pkts.append(ip(1, icmp(0, 0, struct.pack("!HH", 9, 10), b""), 1022))
pkts.append(ip(1, icmp(4, 0, b"\0\0\0\0", inner_udp[:12]), 1023))
pkts.append(ip(1, b"\x08", 1024))
pkts.append(ip(136, udp(40004, 9, b"lite"), 1025))

s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
for p in pkts:
    s.sendto(p, ("10.77.0.2", 0))
