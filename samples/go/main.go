// Streams a completion from the shipped moert-tiny-coder with the Go binding; Ctrl-C cancels it.
//
//	cd samples/go && go run .   (PKG_CONFIG_PATH=build/pkgconfig for a build tree, PREFIX/lib/pkgconfig for an install)
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"

	moert "github.com/moert/moert/bindings/go"
)

func main() {
	dir := os.Getenv("MOERT_MODEL_DIR")
	if dir == "" {
		dir = filepath.Join("..", "models", "moert-tiny-coder")
	}
	prompt := "def fibonacci(n):\n"
	if len(os.Args) > 1 {
		prompt = os.Args[1]
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	model, err := moert.Load(dir, &moert.LoadOptions{Progress: func(f float64, stage string) bool {
		fmt.Fprintf(os.Stderr, "\rloading %3.0f%% %-12s", f*100, stage)
		return false
	}})
	fmt.Fprintln(os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer model.Close()
	stream, err := model.Generate(ctx, prompt, &moert.GenerateOptions{MaxTokens: 48, IgnoreEOS: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer stream.Close()
	fmt.Print(prompt)
	for stream.Next() {
		fmt.Print(stream.Token().Text)
	}
	if err := stream.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "\n", err)
		os.Exit(1)
	}
	u, _ := stream.Usage()
	fmt.Printf("\n--- finish: %s, %d prompt + %d generated tokens, %.1f tokens/s\n",
		stream.FinishReason(), u.PromptTokens, u.GeneratedTokens, u.TokensPerSecond)
}
