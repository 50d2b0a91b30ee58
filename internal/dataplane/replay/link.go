package replay

import (
	"encoding/binary"

	"github.com/gopacket/gopacket/layers"
)

// Link-layer constants the replay understands. Only the link types below are
// accepted; anything else is refused when the capture is opened, since
// guessing where the IP header starts would feed garbage to the engine.
const (
	etherTypeIPv4 = 0x0800
	etherTypeARP  = 0x0806
	etherTypeVLAN = 0x8100
	etherTypeQinQ = 0x88a8
	etherTypeIPv6 = 0x86dd

	ethHdrLen  = 14
	sllHdrLen  = 16 // Linux cooked capture v1 (DLT_LINUX_SLL)
	sll2HdrLen = 20 // Linux cooked capture v2 (DLT_LINUX_SLL2)

	arphrdEther    = 1
	arphrdLoopback = 772

	// linkTypeRawAlt are the values some systems write for DLT_RAW instead
	// of LINKTYPE_RAW (101); libpcap maps both to raw IP.
	linkTypeRawAlt1 layers.LinkType = 12
	linkTypeRawAlt2 layers.LinkType = 14
)

// Skip says why a frame did not reach the IPv4 hooks.
type Skip uint8

const (
	SkipNone      Skip = iota
	SkipARP            // ARP: handled below IP, netfilter's IPv4 hooks never see it
	SkipIPv6           // IPv6: ip6tables' hooks, not replayed yet
	SkipVLAN           // 802.1Q/802.1ad tagged: seen on the VLAN device, not this one
	SkipOther          // another EtherType / protocol
	SkipTruncated      // link header or IP header cut by the snap length
	SkipBadIP          // IPv4 header invalid (ip_rcv drops it before PREROUTING)
	SkipEcho           // the capture's copy of a reply REJECT already emitted here
	numSkips
)

var skipNames = [numSkips]string{"", "arp", "ipv6", "vlan", "other", "truncated", "bad-ip", "reject-echo"}

// String returns the name used in the statistics and JSON output.
func (s Skip) String() string {
	if s < numSkips {
		return skipNames[s]
	}
	return "unknown"
}

// linkSupported reports whether frames of link type lt can be split.
func linkSupported(lt layers.LinkType) bool {
	switch lt {
	case layers.LinkTypeEthernet, layers.LinkTypeLinuxSLL, layers.LinkTypeLinuxSLL2,
		layers.LinkTypeRaw, layers.LinkTypeIPv4, layers.LinkTypeIPv6, linkTypeRawAlt1, linkTypeRawAlt2:
		return true
	}
	return false
}

// splitter cuts the link-layer header off a frame. It keeps a scratch
// buffer for the synthesised Ethernet header of cooked captures, so
// splitting allocates nothing.
type splitter struct {
	mac [ethHdrLen]byte
}

// split returns the link header to show as LOG's MAC= (nil when there is
// none), the network-layer bytes, and the skip reason for frames that are
// not IPv4.
//
// For Linux cooked captures the real Ethernet header is gone: the kernel
// kept only the sender's address and the protocol. The MAC= LOG prints for
// such a frame is rebuilt as an Ethernet header with a zero destination,
// the recorded source and the protocol — exact for the loopback device
// (all-zero addresses), an approximation elsewhere. Capture on the
// interface itself (Ethernet link type) for byte-exact MAC= fields.
func (s *splitter) split(lt layers.LinkType, frame []byte) (link, ip []byte, skip Skip) {
	var proto uint16
	switch lt {
	case layers.LinkTypeEthernet:
		if len(frame) < ethHdrLen {
			return nil, nil, SkipTruncated
		}
		link, ip = frame[:ethHdrLen], frame[ethHdrLen:]
		proto = binary.BigEndian.Uint16(frame[12:14])
	case layers.LinkTypeLinuxSLL:
		if len(frame) < sllHdrLen {
			return nil, nil, SkipTruncated
		}
		hatype := binary.BigEndian.Uint16(frame[2:4])
		alen := int(binary.BigEndian.Uint16(frame[4:6]))
		proto = binary.BigEndian.Uint16(frame[14:16])
		link = s.cooked(hatype, frame[6:6+min(alen, 8)], proto)
		ip = frame[sllHdrLen:]
	case layers.LinkTypeLinuxSLL2:
		if len(frame) < sll2HdrLen {
			return nil, nil, SkipTruncated
		}
		proto = binary.BigEndian.Uint16(frame[0:2])
		hatype := binary.BigEndian.Uint16(frame[8:10])
		alen := int(frame[11])
		link = s.cooked(hatype, frame[12:12+min(alen, 8)], proto)
		ip = frame[sll2HdrLen:]
	default: // raw IP: the version nibble says which
		if len(frame) == 0 {
			return nil, nil, SkipTruncated
		}
		switch frame[0] >> 4 {
		case 4:
			return nil, frame, SkipNone
		case 6:
			return nil, nil, SkipIPv6
		}
		return nil, nil, SkipOther
	}
	switch proto {
	case etherTypeIPv4:
		return link, ip, SkipNone
	case etherTypeIPv6:
		return nil, nil, SkipIPv6
	case etherTypeARP:
		return nil, nil, SkipARP
	case etherTypeVLAN, etherTypeQinQ:
		return nil, nil, SkipVLAN
	}
	return nil, nil, SkipOther
}

// cooked rebuilds an Ethernet-shaped header for a cooked frame (see split).
// Devices that are neither Ethernet nor loopback get no MAC=, as the kernel
// prints none for devices without a hardware header.
func (s *splitter) cooked(hatype uint16, addr []byte, proto uint16) []byte {
	if hatype != arphrdEther && hatype != arphrdLoopback {
		return nil
	}
	clear(s.mac[:])
	if len(addr) == 6 {
		copy(s.mac[6:12], addr)
	}
	binary.BigEndian.PutUint16(s.mac[12:], proto)
	return s.mac[:]
}
