package match

import (
	"testing"

	"github.com/uptables/uptables/internal/xt"
)

func TestConntrack(t *testing.T) {
	psRunCases(t, "conntrack", xt.IPv4, []psCase{
		{args: "--ctstate DNAT,NEW ! --ctproto udp --ctorigsrc 10.0.0.1/8 ! --ctorigdst 1.2.3.4/255.255.0.0 --ctreplsrc 1.1.1.1/32 --ctrepldst 0.0.0.0/0",
			save:  "--ctstate NEW,DNAT ! --ctproto 17 --ctorigsrc 10.0.0.1/8 ! --ctorigdst 1.2.3.4/16 --ctreplsrc 1.1.1.1 --ctrepldst 0.0.0.0/0",
			list:  "ctstate NEW,DNAT ! ctproto 17 ctorigsrc 10.0.0.1/8 ! ctorigdst 1.2.3.4/16 ctreplsrc 1.1.1.1 ctrepldst 0.0.0.0/0",
			listN: "ctstate NEW,DNAT ! ctproto 17 ctorigsrc 10.0.0.1/8 ! ctorigdst 1.2.3.4/16 ctreplsrc 1.1.1.1 ctrepldst anywhere"},
		{args: "--ctorigsrcport 80 ! --ctorigdstport 1:2 --ctreplsrcport http --ctrepldstport 5:5",
			save: "--ctorigsrcport 80 ! --ctorigdstport 1:2 --ctreplsrcport 80 --ctrepldstport 5",
			list: "ctorigsrcport 80 ! ctorigdstport 1:2 ctreplsrcport 80 ctrepldstport 5"},
		{args: "! --ctstatus ASSURED,SEEN_REPLY,expected --ctexpire 5:10 --ctdir REPLY",
			save: "! --ctstatus EXPECTED,SEEN_REPLY,ASSURED --ctexpire 5:10 --ctdir REPLY",
			list: "! ctstatus EXPECTED,SEEN_REPLY,ASSURED ctexpire 5:10 ctdir REPLY"},
		{args: "--ctstatus NONE,ASSURED", save: "--ctstatus ASSURED"},
		{args: "--ctstatus none", save: "--ctstatus NONE"},
		{args: "--ctstatus A,S", save: "--ctstatus SEEN_REPLY,ASSURED"},
		{args: "--ctstate D,U", save: "--ctstate UNTRACKED,DNAT"},
		{args: "--ctstate DNAT,SNAT,UNTRACKED,ESTABLISHED,RELATED,NEW,INVALID", save: "--ctstate INVALID,NEW,RELATED,ESTABLISHED,UNTRACKED,SNAT,DNAT"},
		{args: "--ctproto all", save: "--ctproto 0"},
		{args: "! --ctproto 0", save: "! --ctproto 0"},
		{args: "--ctproto vrrp", save: "--ctproto 112"},
		{args: "--ctorigsrc 1.2.3.4/33", save: "--ctorigsrc 1.2.3.4"},
		{args: "--ctorigsrc 1.2.3.4/0.255.0.0", save: "--ctorigsrc 1.2.3.4"},
		{args: "--ctexpire 10:5", save: "--ctexpire 10:5"},
		{args: "--ctexpire 5:", save: "--ctexpire 5:4294967295"},
		{args: "--ctexpire :5", save: "--ctexpire 0:5"},
		{args: "--ctexpire 0x10", save: "--ctexpire 16"},
		{args: "--ctorigsrcport 65536", save: "--ctorigsrcport 0"},
		{args: "--ctorigsrcport 5:", save: "--ctorigsrcport 5:65535"},
		{args: "--ctorigsrcport 0:65535", save: "--ctorigsrcport 0:65535"},
		{args: "--ctdir original", save: "--ctdir ORIGINAL"},
		{args: "--ctstate wrong", err: "Bad ctstate \"wrong\""},
		{args: "--ctstate NEW,", err: "Bad ctstate \"\""},
		{args: "--ctstate NEW,,DNAT", err: "Bad ctstate \",DNAT\""},
		{args: "--ctstatus FOO", err: "Bad ctstatus \"FOO\""},
		{args: "--ctstatus ,", err: "Bad ctstatus \",\""},
		{args: "--ctdir O", err: "conntrack: Bad value for \"--ctdir\" option: \"O\""},
		{args: "! --ctdir REPLY", err: "conntrack: option \"--ctdir\" cannot be inverted.\n"},
		{args: "--ctexpire 42949672956", err: "conntrack: bad value for option \"--ctexpire\" near \"42949672956\", or out of range (0-4294967295).\n"},
		{args: "--ctexpire -1", err: "conntrack: bad value for option \"--ctexpire\" near \"-1\", or out of range (0-4294967295).\n"},
		{args: "--ctexpire 1:2:3", err: "conntrack: Too many components for option \"--ctexpire\" (max: 2)\n"},
		{args: "--ctorigsrcport foo", err: "Port \"foo\" does not resolve to anything.\n"},
		{args: "--ctproto foo", err: "unknown protocol \"foo\" specified"},
		{args: "--ctstate NEW --ctstate NEW", err: "conntrack: option \"--ctstate\" can only be used once.\n"},
		{args: "", err: "conntrack: At least one option is required"},
	})
}
