//go:build cgo && !valve_static

package valve

// Links libvalve.so. pkg-config reads install-libvalve.pc, in this directory, which requires
// valve.pc, so the flags are those of the installed valve.pc (or PKG_CONFIG_PATH's). The
// indirection is for the one message a missing libvalve gives, pkg-config's: it then ends in
// "Package 'valve', required by 'install-libvalve', not found", which names what to install.

// #cgo pkg-config: ./install-libvalve.pc
import "C"
