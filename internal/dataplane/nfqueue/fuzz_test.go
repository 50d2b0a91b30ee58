package nfqueue

import (
	"bytes"
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// packetMsg builds one NFQNL_MSG_PACKET as the kernel sends it.
func packetMsg(w *msgWriter, id uint32, hook uint8, payload []byte) {
	w.begin(msgPacket, 0, 3)
	w.attr(attrPacketHdr, []byte{byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id), 8, 0, hook})
	w.attr(attrMark, []byte{0, 0, 0, 5})
	w.attr(attrTimestamp, []byte{0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 7})
	w.attr(attrIfIndexIn, []byte{0, 0, 0, 2})
	w.attr(attrHwAddr, []byte{0, 6, 0, 0, 1, 2, 3, 4, 5, 6, 0, 0})
	w.attr(attrUID, []byte{0, 0, 3, 0xe8})
	w.attr(attrGID, []byte{0, 0, 3, 0xe8})
	w.attr(attrCapLen, []byte{0, 0, 5, 0xdc})
	w.attr(attrPayload, payload)
	w.attr(attrSkbInfo, []byte{0, 0, 0, 0})
	w.end()
}

// ackMsg builds an NLMSG_ERROR answering seq with errno code (0 = ack).
func ackMsg(w *msgWriter, seq uint32, code int32) {
	w.begin(unix.NLMSG_ERROR, 0, 0)
	w.b = w.b[:len(w.b)-nfgenHdrLen]
	var v [4 + nlmsgHdrLen]byte
	native.PutUint32(v[:], uint32(code))
	w.b = append(w.b, v[:]...)
	native.PutUint32(w.b[w.start+8:], seq)
	w.end()
}

var seedPayload = []byte{0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0, 53, 0, 53, 0, 8, 0, 0}

// seedDatagrams: two packets in one datagram, an ack then a packet, and a
// packet cut in its payload.
func seedDatagrams() [][]byte {
	var out [][]byte
	w := msgWriter{b: make([]byte, 0, 1024)}
	packetMsg(&w, 1, hookLocalIn, seedPayload)
	packetMsg(&w, 2, hookLocalOut, seedPayload[:20])
	out = append(out, append([]byte(nil), w.b...))
	w.b = w.b[:0]
	ackMsg(&w, 7, -int32(unix.ENOENT))
	packetMsg(&w, 3, hookForward, seedPayload)
	out = append(out, append([]byte(nil), w.b...))
	out = append(out, out[0][:len(out[0])-30])
	return out
}

// readAll drains a Conn whose receive buffer holds data (no socket: a
// closed Conn reads nothing more) and returns what Read handed out.
func readAll(t testing.TB, data []byte) ([]Msg, *Conn) {
	c := &Conn{rbuf: make([]byte, recvBufSize)}
	c.rend = copy(c.rbuf, data)
	c.closed.Store(true)
	var out []Msg
	for i := 0; ; i++ {
		if i > len(data)/nlmsgHdrLen+1 {
			t.Fatalf("%d messages out of %d bytes", i, len(data))
		}
		var m Msg
		err := c.Read(&m, false)
		if err != nil {
			if !errors.Is(err, unix.EBADF) {
				t.Fatalf("Read: %v, want EBADF once the buffer is drained", err)
			}
			return out, c
		}
		out = append(out, m)
	}
}

// FuzzParsePacket: the attributes of a PACKET message, whatever the bytes:
// no panic, slices handed out lie inside the message, and an error leaves
// no payload behind.
func FuzzParsePacket(f *testing.F) {
	for _, d := range seedDatagrams() {
		if len(d) > nlmsgHdrLen+nfgenHdrLen {
			f.Add(d[nlmsgHdrLen+nfgenHdrLen:])
		}
	}
	f.Add([]byte{8, 0, 10, 0, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Msg
		err := parsePacket(b, &m)
		if err != nil {
			if m.Payload != nil || m.HwAddr != nil {
				t.Fatalf("error %v with payload %d bytes, hwaddr %d bytes", err, len(m.Payload), len(m.HwAddr))
			}
			return
		}
		if m.Malformed {
			t.Fatal("Malformed without an error")
		}
		if m.Payload != nil {
			if m.payloadOff < nlaHdrLen || m.payloadOff+len(m.Payload) > len(b) || !bytes.Equal(b[m.payloadOff:m.payloadOff+len(m.Payload)], m.Payload) {
				t.Fatalf("payload at %d (%d bytes) not where it was read", m.payloadOff, len(m.Payload))
			}
			if cap(m.Payload) != len(m.Payload) {
				t.Fatalf("payload capacity %d reaches past the attribute (%d)", cap(m.Payload), len(m.Payload))
			}
		}
		if len(m.HwAddr) > 8 || (m.HwAddr != nil && bytes.Index(b, m.HwAddr) < 0) {
			t.Fatalf("hwaddr % x", m.HwAddr)
		}
	})
}

// FuzzRead: whole datagrams through Conn.Read, the path every queued packet
// takes: no panic, bounded work, and every message handed out is either a
// packet with its payload from the datagram or a Malformed one with an id.
func FuzzRead(f *testing.F) {
	for _, d := range seedDatagrams() {
		f.Add(d)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > recvBufSize {
			data = data[:recvBufSize]
		}
		msgs, c := readAll(t, data)
		if c.Stats.Packets.Load() != uint64(len(msgs)) {
			t.Fatalf("%d packets counted, %d handed out", c.Stats.Packets.Load(), len(msgs))
		}
		for _, m := range msgs {
			if m.Malformed {
				if m.Payload != nil {
					t.Fatalf("malformed message with a payload")
				}
				continue
			}
			if len(m.Payload) > 0 && bytes.Index(data, m.Payload) < 0 {
				t.Fatalf("payload % x not from the datagram", m.Payload)
			}
			if cap(m.Payload) > len(m.Payload) && cap(m.Payload) > 0xffff {
				t.Fatalf("payload may grow to %d bytes, past the kernel's 65535", cap(m.Payload))
			}
		}
	})
}

// FuzzFindAck: the acknowledgement search over whatever the kernel (or a
// confused socket) sent while we wait for an ack.
func FuzzFindAck(f *testing.F) {
	w := msgWriter{b: make([]byte, 0, 256)}
	packetMsg(&w, 1, hookLocalIn, seedPayload)
	ackMsg(&w, 9, 0)
	f.Add(append([]byte(nil), w.b...), uint32(9))
	w.b = w.b[:0]
	ackMsg(&w, 4, -int32(unix.EBUSY))
	f.Add(append([]byte(nil), w.b...), uint32(4))
	f.Fuzz(func(t *testing.T, b []byte, seq uint32) {
		done, err := findAck(b, seq)
		if !done && err != nil {
			t.Fatalf("not done but error %v", err)
		}
		if err != nil && err.Error() == "" {
			t.Fatal("empty error")
		}
	})
}

// TestReadMalformed: every way a PACKET message can be cut still hands out
// its id (so the worker gives the fail verdict instead of leaving the
// packet queued in the kernel forever), counts it, and allocates nothing.
func TestReadMalformed(t *testing.T) {
	w := msgWriter{b: make([]byte, 0, 1024)}
	packetMsg(&w, 0x0a0b0c0d, hookLocalIn, seedPayload)
	whole := append([]byte(nil), w.b...)
	hdrEnd := nlmsgHdrLen + nfgenHdrLen + nlaHdrLen + 8 // after PACKET_HDR's padded value
	for n := hdrEnd; n < len(whole); n++ {
		// The message length still says whole: the datagram was cut.
		msgs, c := readAll(t, whole[:n])
		if len(msgs) != 1 || !msgs[0].Malformed || msgs[0].ID != 0x0a0b0c0d || msgs[0].Hook != hookLocalIn || msgs[0].Payload != nil {
			t.Fatalf("cut at %d: %+v", n, msgs)
		}
		if c.Stats.Malformed.Load() != 1 {
			t.Fatalf("cut at %d: malformed count %d", n, c.Stats.Malformed.Load())
		}
	}
	// The message length agrees with the cut, but an attribute inside
	// claims more than is left.
	cut := append([]byte(nil), whole[:len(whole)-4]...) // SKB_INFO keeps its header only
	native.PutUint32(cut, uint32(len(cut)))
	if msgs, _ := readAll(t, cut); len(msgs) != 1 || !msgs[0].Malformed || msgs[0].ID != 0x0a0b0c0d {
		t.Fatalf("attribute past the message: %+v", msgs)
	}
	// Cut before the id is known: nothing to give a verdict to; skipped
	// and counted, and the next datagram still reads.
	for n := nlmsgHdrLen; n < hdrEnd-1; n++ {
		msgs, c := readAll(t, whole[:n])
		if len(msgs) != 0 {
			t.Fatalf("cut at %d: %+v", n, msgs)
		}
		if n >= nlmsgHdrLen+nfgenHdrLen && c.Stats.Malformed.Load() != 1 {
			t.Fatalf("cut at %d: malformed count %d", n, c.Stats.Malformed.Load())
		}
	}
	// A good packet after a bad one in the same datagram is still read.
	bad := append([]byte(nil), whole...)
	native.PutUint16(bad[nlmsgHdrLen+nfgenHdrLen+nlaHdrLen+8:], 2) // an attribute of length 2
	msgs, _ := readAll(t, append(bad, whole...))
	if len(msgs) != 2 || !msgs[0].Malformed || msgs[1].Malformed || !bytes.Equal(msgs[1].Payload, seedPayload) {
		t.Fatalf("bad then good: %+v", msgs)
	}

	c := &Conn{rbuf: make([]byte, recvBufSize)}
	c.closed.Store(true)
	var m Msg
	if n := testing.AllocsPerRun(100, func() {
		c.rpos, c.rend = 0, copy(c.rbuf, whole[:len(whole)-3])
		c.Read(&m, false)
	}); n != 0 {
		t.Errorf("reading a cut message allocates %.1f", n)
	}
}

// TestMalformedGetsFailVerdict: the worker answers a Malformed message with
// the fail verdict (accept with fail-open, drop without) and counts it as
// undecodable, without running it through the rules.
func TestMalformedGetsFailVerdict(t *testing.T) {
	for _, failOpen := range []bool{false, true} {
		d, fq := newTestDaemon(t, rulesHeader+"-A INPUT -j DROP\nCOMMIT\n", failOpen, nil)
		fq.in = []Msg{{ID: 41, Hook: hookLocalIn, Malformed: true}}
		w := d.workers[0]
		w.handle(&fq.in[0])
		want := Drop
		if failOpen {
			want = Accept
		}
		if len(fq.got) != 1 || fq.got[0].id != 41 || fq.got[0].v != want {
			t.Errorf("fail-open %v: verdicts %+v, want id 41 %v", failOpen, fq.got, want)
		}
		if w.st.Undecodable.Load() != 1 {
			t.Errorf("fail-open %v: undecodable %d", failOpen, w.st.Undecodable.Load())
		}
	}
}

// TestFindAck: the kernel's answers to a CONFIG request.
func TestFindAck(t *testing.T) {
	w := msgWriter{b: make([]byte, 0, 256)}
	packetMsg(&w, 1, hookLocalIn, seedPayload) // a packet arriving before the ack
	ackMsg(&w, 8, 0)                           // another request's ack
	ackMsg(&w, 9, -int32(unix.EBUSY))
	if done, err := findAck(w.b, 9); !done || err != unix.EBUSY {
		t.Errorf("seq 9: %v %v, want EBUSY", done, err)
	}
	if done, err := findAck(w.b, 8); !done || err != nil {
		t.Errorf("seq 8: %v %v, want ack", done, err)
	}
	if done, _ := findAck(w.b, 10); done {
		t.Error("seq 10 found")
	}
	if done, _ := findAck(w.b[:len(w.b)-1], 9); done {
		t.Error("cut ack found")
	}
}
