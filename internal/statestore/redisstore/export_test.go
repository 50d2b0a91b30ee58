package redisstore

import "testing"

// Backend is backend for the external tests.
type Backend = backend

// Backends is backends for the external tests.
func Backends(t testing.TB) []Backend { return backends(t) }

// Name and Addr let the external tests name and dial a backend.
func (b backend) Name() string { return b.name }
func (b backend) Addr() string { return b.addr }
