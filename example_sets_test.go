package uptables_test

import (
	"fmt"
	"net"
	"strings"

	"github.com/uptables/uptables"
)

// A country blocklist: the networks live in a hash:net set, one rule
// drops what the set holds, and the list changes while the server runs,
// without a reload. (In production: uptables.LoadSetsFile on a file that
// `uptables ipset --sets FILE restore < country.ipset` wrote.)
func ExampleLoadSets() {
	sets, err := uptables.LoadSets(strings.NewReader(`create blocklist hash:net family inet hashsize 1024 maxelem 65536 initval 0x1234abcd
add blocklist 127.0.0.2/31
add blocklist 127.0.0.2 nomatch
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	rules, err := uptables.LoadRulesWithSets(strings.NewReader(
		"-A INPUT -p tcp -m set --match-set blocklist src -j DROP\n"), sets)
	if err != nil {
		fmt.Println(err)
		return
	}
	fw, err := uptables.New(rules) // the rules' sets; or uptables.WithSets(sets)
	if err != nil {
		fmt.Println(err)
		return
	}
	raw, _ := net.Listen("tcp", "127.0.0.1:0")
	ln := fw.Listener(raw)
	defer ln.Close()
	go echoAll(ln, make(chan string, 8))
	addr := ln.Addr().String()

	fmt.Println("from 127.0.0.3:", askFrom("127.0.0.3", addr, "hello")) // in 127.0.0.2/31
	fmt.Println("from 127.0.0.2:", askFrom("127.0.0.2", addr, "hello")) // nomatch exception
	fmt.Println("from 127.0.0.4:", askFrom("127.0.0.4", addr, "hello")) // not listed

	_ = sets.Add("blocklist", "127.0.0.4/30")
	listed, _ := sets.Test("blocklist", "127.0.0.5")
	fmt.Println("127.0.0.5 listed:", listed)
	fmt.Println("from 127.0.0.4:", askFrom("127.0.0.4", addr, "hello"))

	// ipset list, less "Size in memory" (the kernel counts its own
	// allocations); References: 1 is the rule.
	var list strings.Builder
	_ = sets.List(&list, "blocklist")
	for _, l := range strings.Split(strings.TrimSuffix(list.String(), "\n"), "\n") {
		if !strings.HasPrefix(l, "Size in memory:") {
			fmt.Println(l)
		}
	}
	// Output:
	// from 127.0.0.3: closed without a byte
	// from 127.0.0.2: reply hello
	// from 127.0.0.4: reply hello
	// 127.0.0.5 listed: true
	// from 127.0.0.4: closed without a byte
	// Name: blocklist
	// Type: hash:net
	// Revision: 7
	// Header: family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x1234abcd
	// References: 1
	// Number of entries: 3
	// Members:
	// 127.0.0.2 nomatch
	// 127.0.0.2/31
	// 127.0.0.4/30
}
