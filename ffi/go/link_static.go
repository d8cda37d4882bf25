//go:build cgo && valve_static

package valve

// Links libvalve.a into the binary (`go build -tags valve_static`), through valve-static.pc:
// as link_shared.go, by way of install-libvalve-static.pc, whose name is in the message a
// missing libvalve gives.

// #cgo pkg-config: ./install-libvalve-static.pc
import "C"
