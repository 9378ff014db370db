// An outside Go program using moert through `#cgo pkg-config: moert` (no CGO_* variables).
package main

import (
	"context"
	"fmt"
	"os"

	moert "github.com/moert/moert/bindings/go"
)

func main() {
	model, err := moert.Load(os.Args[1], nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer model.Close()
	stream, err := model.Generate(context.Background(), "def fibonacci(n):\n", &moert.GenerateOptions{MaxTokens: 24, IgnoreEOS: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer stream.Close()
	n := 0
	for stream.Next() {
		fmt.Print(stream.Token().Text)
		n++
	}
	if err := stream.Err(); err != nil || n == 0 {
		fmt.Fprintln(os.Stderr, "stream failed:", err)
		os.Exit(1)
	}
	fmt.Printf("\nstreamed %d tokens\n", n)
}
