import socket, struct, time, sys
dst = "10.99.7.2"
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b)//2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
# ping with 100 data bytes (IP length 128)
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
r.settimeout(1)
for seq in (1, 2):
    data = bytes(range(100))
    h = struct.pack("!BBHHH", 8, 0, 0, 0x4242, seq)
    c = csum(h + data)
    r.sendto(struct.pack("!BBHHH", 8, 0, c, 0x4242, seq) + data, (dst, 0))
    try: r.recv(2000)
    except Exception: pass
    time.sleep(0.05)
# tcp to a rejected port: RST
s = socket.socket(); s.settimeout(1)
try: s.connect((dst, 23))
except Exception as e: print("23:", e)
s.close()
# udp to a rejected port: ICMP port unreachable
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(1)
u.connect((dst, 9999)); u.send(b"knock knock")
try: u.recv(100)
except Exception as e: print("9999:", e)
# a full TCP connection with data
s = socket.socket(); s.settimeout(2)
s.connect((dst, 8080)); s.sendall(b"GET / HTTP/1.0\r\n\r\n"); print("8080:", s.recv(100)); s.close()
time.sleep(0.2)
