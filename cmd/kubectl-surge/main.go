// Command kubectl-surge is the kubectl plugin "surge": on PATH, kubectl runs
// it as kubectl surge. See internal/cli for its commands.
package main

import (
	"context"
	"os"
	"os/signal"

	"github.com/surge-operator/surge-operator/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := cli.Run(ctx, os.Args[1:], cli.Streams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}, os.Getenv)
	stop()
	os.Exit(code)
}
