//go:build !cgo

package valve

// The binding calls libvalve through cgo, which CGO_ENABLED=0 turns off (as does a cross
// build without a C cross compiler). Without this file, go build would say only "build
// constraints exclude all Go files"; with it, the compiler's "undefined" names the fix.
var _ = valve_requires_cgo_set_CGO_ENABLED_1
