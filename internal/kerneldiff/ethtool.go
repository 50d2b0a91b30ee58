package kerneldiff

import (
	"fmt"
	"runtime"
	"syscall"
	"unsafe"
)

// Ethtool constants (linux/ethtool.h, linux/sockios.h).
const (
	siocEthtool    = 0x8946
	ethtoolSTxCsum = 0x00000017 // set TX checksum offload
)

type ethtoolValue struct {
	cmd  uint32
	data uint32
}

// ifreqData is struct ifreq with the ifr_data member.
type ifreqData struct {
	name [16]byte
	data unsafe.Pointer
	_    [16]byte
}

// setTxChecksum switches a device's TX checksum offload (ethtool -K DEV tx
// on|off) in the calling process's network namespace. The client's veth
// runs with it off: otherwise its packets cross the veth as
// CHECKSUM_PARTIAL and tcpdump captures them with unfinished checksums,
// which the receiving kernel never verifies but a replay of the capture
// must (a capture from a real wire has complete checksums).
func setTxChecksum(dev string, on bool) error {
	if len(dev) >= 16 {
		return fmt.Errorf("device name %q too long", dev)
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	v := &ethtoolValue{cmd: ethtoolSTxCsum}
	if on {
		v.data = 1
	}
	var req ifreqData
	copy(req.name[:], dev)
	req.data = unsafe.Pointer(v)
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), siocEthtool, uintptr(unsafe.Pointer(&req)))
	runtime.KeepAlive(v)
	if errno != 0 {
		return fmt.Errorf("ethtool -K %s tx off: %w", dev, errno)
	}
	return nil
}
