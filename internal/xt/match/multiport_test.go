package match

import (
	"testing"

	"github.com/uptables/uptables/internal/xt"
)

func TestMultiport(t *testing.T) {
	psRunCases(t, "multiport", xt.IPv4, []psCase{
		{args: "--sports 53,1024:65535", proto: 6, save: "--sports 53,1024:65535", list: "multiport sports 53,1024:65535", listN: "multiport sports domain,1024:65535"},
		{args: "! --dports 22,80:90", proto: 6, save: "! --dports 22,80:90", list: "multiport dports  !22,80:90", listN: "multiport dports  !ssh,http:90"},
		{args: "--source-ports 1,2", proto: 6, save: "--sports 1,2"},
		{args: "--destination-ports http,ssh", proto: 6, save: "--dports 80,22"},
		{args: "--ports 1,2", proto: 17, save: "--ports 1,2", list: "multiport ports 1,2"},
		{args: "--dports 0x10,010", proto: 6, save: "--dports 16,8"},
		{args: "--dports 1:2,3:4,5:6,7:8,9:10,11:12,13:14,15", proto: 6, save: "--dports 1:2,3:4,5:6,7:8,9:10,11:12,13:14,15"},
		{args: "--dports 1:2,3:4,5:6,7:8,9:10,11:12,13:14,15:16", proto: 6, err: "too many ports specified"},
		{args: "--dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16", proto: 6, err: "too many ports specified"},
		{args: "--ports 5:5,6", proto: 17, err: "invalid portrange specified"},
		{args: "--dports 5:", proto: 6, err: "invalid port/service `' specified"},
		{args: "--dports 1,,2", proto: 6, err: "invalid port/service `' specified"},
		{args: "--sports 1024:65536", proto: 6, err: "invalid port/service `65536' specified"},
		{args: "--dports 1,2 --sports 3", proto: 6, err: "multiport: option \"--source-ports\" cannot be used together with \"--destination-ports\".\n"},
		{args: "--dports 1 --dports 3", proto: 6, err: "multiport: option \"--destination-ports\" can only be used once.\n"},
		{args: "--dports 1", proto: 0, err: "multiport needs `-p tcp', `-p udp', `-p udplite', `-p sctp' or `-p dccp'"},
		{args: "--dports 1", proto: 1, err: "multiport only works with TCP, UDP, UDPLITE, SCTP and DCCP"},
		{args: "", proto: 6, err: "multiport expection an option"},
	})
}
