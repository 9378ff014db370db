module example.com/moert-outside

go 1.19

require github.com/moert/moert/bindings/go v0.1.0

// Offline: the module from the checkout, as `go get` would fetch it once published.
replace github.com/moert/moert/bindings/go => @MOERT_GO_MODULE@
