module valve.example/valve

go 1.24
