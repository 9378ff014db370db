module github.com/moert/moert/bindings/go

go 1.19
