package replay

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Format is the container format of a capture.
type Format uint8

const (
	FormatPcap Format = iota + 1
	FormatPcapNG
)

func (f Format) String() string {
	switch f {
	case FormatPcap:
		return "pcap"
	case FormatPcapNG:
		return "pcapng"
	}
	return "unknown"
}

// iface is what the replay needs of one capture interface.
type iface struct {
	name string
	lt   layers.LinkType
}

// source yields the frames of one capture with their link type and the
// name of the interface they were captured on ("" when the file does not
// say). Frames are read with gopacket's ZeroCopy readers: the returned
// slice is valid until the next call.
type source struct {
	format Format
	pcap   *pcapgo.Reader
	ng     *pcapgo.NgReader
	// off is the byte offset of the next pcap record (pcapng blocks are
	// parsed inside gopacket, which does not say where it is).
	off int64
}

// maxFrameLen is the longest frame a capture may hold: libpcap's
// MAXIMUM_SNAPLEN, so no capture tcpdump or dumpcap wrote has longer
// records. A longer record length comes from a corrupt or hostile file;
// refusing it before reading keeps a small file from asking for gigabytes.
const maxFrameLen = 262144

// pcapFileHdrLen and pcapRecHdrLen are the sizes of the classic pcap file
// header and per-record header.
const (
	pcapFileHdrLen = 24
	pcapRecHdrLen  = 16
)

// openSource sniffs the magic number and opens a pcap or pcapng reader.
func openSource(r io.Reader) (*source, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	magic, err := br.Peek(4)
	if err != nil {
		return nil, fmt.Errorf("not a capture file: %w", err)
	}
	switch m := binary.LittleEndian.Uint32(magic); m {
	case 0x0a0d0d0a: // pcapng section header block (same in both byte orders)
		ng, err := pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{WantMixedLinkType: true, SkipUnknownVersion: true})
		if err != nil {
			return nil, fmt.Errorf("pcapng: %w", err)
		}
		return &source{format: FormatPcapNG, ng: ng}, nil
	case 0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1:
		pr, err := pcapgo.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("pcap: %w", err)
		}
		if lt := pr.LinkType(); !linkSupported(lt) {
			return nil, fmt.Errorf("pcap: unsupported link type %d (%s): replay reads Ethernet, Linux cooked v1/v2 and raw IP", uint16(lt), lt)
		}
		// gopacket takes records up to the larger of the header's snap
		// length and maxFrameLen; a header claiming 4 GiB would let one
		// record header ask for that much.
		if pr.Snaplen() > maxFrameLen {
			pr.SetSnaplen(maxFrameLen)
		}
		return &source{format: FormatPcap, pcap: pr, off: pcapFileHdrLen}, nil
	default:
		return nil, fmt.Errorf("not a pcap or pcapng file (magic %08x)", m)
	}
}

// where says where the next frame starts, for error messages: the byte
// offset for pcap, nothing for pcapng.
func (s *source) where() string {
	if s.pcap != nil {
		return fmt.Sprintf(" (record at byte %d)", s.off)
	}
	return ""
}

// errLinkType is returned for a pcapng frame on an interface of an
// unsupported link type.
var errLinkType = errors.New("unsupported link type")

// next returns the next frame. io.EOF ends the capture.
func (s *source) next() (frame []byte, ci gopacket.CaptureInfo, ifc iface, err error) {
	if s.pcap != nil {
		frame, ci, err = s.pcap.ZeroCopyReadPacketData()
		if err != nil {
			// A record header read whole but no byte of its data is a
			// truncated file, not its end: gopacket passes io.EOF on.
			if errors.Is(err, io.EOF) && ci.CaptureLength > 0 {
				err = fmt.Errorf("record of %d bytes: %w", ci.CaptureLength, io.ErrUnexpectedEOF)
			}
			return nil, ci, iface{}, err
		}
		s.off += pcapRecHdrLen + int64(len(frame))
		return frame, ci, iface{lt: s.pcap.LinkType()}, nil
	}
	frame, ci, err = s.ng.ZeroCopyReadPacketData()
	if err != nil {
		return nil, ci, iface{}, err
	}
	if len(frame) > maxFrameLen {
		return nil, ci, iface{}, fmt.Errorf("pcapng: frame of %d bytes, longer than any capture tool writes (%d)", len(frame), maxFrameLen)
	}
	// Interface returns a copy of the description: no allocation, and
	// always current even when a new section redefined the interfaces.
	d, ierr := s.ng.Interface(ci.InterfaceIndex)
	if ierr != nil {
		return nil, ci, iface{}, fmt.Errorf("pcapng: frame on unknown interface %d", ci.InterfaceIndex)
	}
	ifc = iface{name: d.Name, lt: d.LinkType}
	if !linkSupported(ifc.lt) {
		return nil, ci, ifc, fmt.Errorf("pcapng: interface %d (%q): %w %d (%s)", ci.InterfaceIndex, ifc.name, errLinkType, uint16(ifc.lt), ifc.lt)
	}
	return frame, ci, ifc, nil
}
