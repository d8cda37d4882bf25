module github.com/overload-valve/valve/ffi/go

go 1.24
