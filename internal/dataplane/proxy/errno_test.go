package proxy

import "syscall"

const syscallECONNRESET = syscall.ECONNRESET
