module moert-sample

go 1.19

require github.com/moert/moert/bindings/go v0.1.0

// Offline, in this repository: the module from its folder (a published release needs no replace).
replace github.com/moert/moert/bindings/go => ../../bindings/go
