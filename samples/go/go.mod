module moert-sample

go 1.19

require moert v0.0.0

replace moert => ../../bindings/go
