package iptables

import "strings"

// extensionHint returns uptables' advice for extension errors people
// commonly hit, when the extension gave none. The texts matched are
// iptables' own messages (the extensions reproduce them exactly).
func extensionHint(msg string) string {
	switch {
	case strings.HasPrefix(msg, "--tcp-flags requires two args"):
		return "--tcp-flags takes two comma lists: the flags to examine and those of them that must be set, e.g. --tcp-flags SYN,RST,ACK,FIN SYN (which is what --syn means)"
	case strings.HasPrefix(msg, `log level "`):
		lvl := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(msg), `log level "`), `" unknown`)
		sug := ""
		switch strings.ToLower(lvl) {
		case "err":
			sug = "did you mean error (3)? "
		case "warn":
			sug = "did you mean warning (4)? "
		case "emergency":
			sug = "did you mean emerg (0)? "
		case "critical":
			sug = "did you mean crit (2)? "
		}
		return sug + "--log-level takes emerg alert crit error warning notice info debug, or 0-7"
	case strings.HasPrefix(msg, "invalid port/service `!'"):
		return "put the negation before the option: ! --dport PORT"
	}
	return ""
}
