package conntrack

// SetClosing is what the kernel does to the connection of a packet that
// REJECT answers with a TCP reset (nf_send_reset calls nf_ct_set_closing,
// Linux 6.x; measured on 6.18, spec §8.3): a confirmed TCP connection moves
// to CLOSE at once, before the RST has even crossed OUTPUT, so it happens
// whether or not an OUTPUT rule later drops the RST. Unless the connection
// was already in CLOSE or has a fixed timeout (CT --timeout), its timer is
// set to the CLOSE timeout (nf_conntrack_tcp_timeout_close, 10 s) from
// now. Nothing else changes: status bits (ASSURED stays), window tracking,
// mark. From then on nf_conncount (connlimit) no longer counts it (§3.2).
//
// Unconfirmed entries (the rejected SYN's own, which is never confirmed),
// nil and non-TCP connections are left alone, as the kernel does; an ICMP
// error from REJECT never closes anything. The caller holds a reference to
// c (the offending packet's Result). Allocation-free.
func (t *Table) SetClosing(c *Conn, now int64) {
	if c == nil || c.Proto() != ProtoTCP {
		return
	}
	st := c.Status()
	if st&StatusConfirmed == 0 || st&StatusDying != 0 {
		return
	}
	c.mu.Lock()
	old := c.tcp.state
	c.tcp.state = TCPClose
	c.pstate.Store(uint32(TCPClose))
	c.mu.Unlock()
	if old == TCPClose || st&StatusFixedTimeout != 0 {
		return
	}
	c.expires.Store(now + int64(t.cfg.Timeouts.TCPClose))
}
